//! A TCP proxy in front of Postgres that reads the client's messages and can cut or stall the connection at chosen points.
