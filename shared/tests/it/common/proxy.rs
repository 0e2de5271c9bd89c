//! A TCP proxy in front of Postgres that reads the client's messages and can cut or stall the connection at
//! a chosen point of a transaction: the stand-in for a network that fails, or a deadline that passes, at
//! exactly the worst moment. Armed plans apply once, to the next transaction that reaches their point.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Where the next transaction is interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Pass,
    /// The connection is cut when the first statement after BEGIN is sent: nothing was done.
    CutFirstStatement,
    /// COMMIT reaches the server, which commits; the connection is cut before its answer gets back.
    CutAfterCommit,
    /// COMMIT reaches the server; its answer is held back this long, then the connection is cut.
    StallAfterCommit(Duration),
    /// The first statement after BEGIN reaches the server; its answer is held back this long, then the
    /// connection is cut.
    StallFirstStatement(Duration),
}

/// A proxy on a local port; see the module's description.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub port: u16,
    plan: Arc<Mutex<Plan>>,
    /// Plans that went off.
    fired: Arc<Mutex<Vec<Plan>>>,
}

/// What the client → server side tells the server → client side to do with the next answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Forward,
    Drop,
    Hold(Duration),
}

impl Proxy {
    pub async fn start(server: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            plan: Arc::new(Mutex::new(Plan::Pass)),
            fired: Arc::default(),
        };
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) =
                    tokio::net::TcpStream::connect((server.0.as_str(), server.1)).await
                else {
                    continue;
                };
                shared.serve(client, upstream);
            }
        });
        proxy
    }

    /// The options of `server` reached through the proxy (in the clear: it reads the protocol).
    pub fn options(&self, server: PgConnectOptions) -> PgConnectOptions {
        server
            .host("127.0.0.1")
            .port(self.port)
            .ssl_mode(PgSslMode::Disable)
    }

    /// Interrupts the next transaction that reaches the plan's point.
    pub fn arm(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }

    /// The plans that went off so far, in order.
    pub fn fired(&self) -> Vec<Plan> {
        self.fired.lock().unwrap().clone()
    }

    /// Takes the armed plan if `point` is its point.
    fn take(&self, point: fn(Plan) -> bool) -> Option<Plan> {
        let mut plan = self.plan.lock().unwrap();
        if point(*plan) {
            let taken = std::mem::replace(&mut *plan, Plan::Pass);
            self.fired.lock().unwrap().push(taken);
            Some(taken)
        } else {
            None
        }
    }

    fn serve(&self, client: tokio::net::TcpStream, upstream: tokio::net::TcpStream) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        let (kill, killed) = watch::channel(false);
        let kill = Arc::new(kill);
        let (answer_tx, answer_rx) = watch::channel(Answer::Forward);

        // Server → client: forwards answers, unless told to drop or hold the next one.
        let mut killed_down = killed.clone();
        let kill_down = Arc::clone(&kill);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tokio::select! {
                    read = server_read.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    },
                    _ = killed_down.changed() => break,
                };
                let answer = *answer_rx.borrow();
                match answer {
                    Answer::Forward => {}
                    Answer::Drop => break,
                    Answer::Hold(pause) => {
                        tokio::time::sleep(pause).await;
                        break;
                    }
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = kill_down.send(true);
        });

        // Client → server: reads the messages, forwards them, and applies the plan at its point.
        let proxy = self.clone();
        let mut killed_up = killed;
        tokio::spawn(async move {
            let mut pending: Vec<u8> = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut started = false;
            let mut after_begin = false;
            loop {
                let n = tokio::select! {
                    read = client_read.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    },
                    _ = killed_up.changed() => break,
                };
                pending.extend_from_slice(&buf[..n]);
                // Forward message by message, so that a cut falls exactly between two of them.
                let mut forward: Vec<u8> = Vec::new();
                let mut cut = false;
                loop {
                    // The startup message has no type byte; every later one is a type byte and a
                    // big-endian length that counts itself.
                    let header = usize::from(started);
                    if pending.len() < header + 4 {
                        break;
                    }
                    let len = u32::from_be_bytes(pending[header..header + 4].try_into().unwrap())
                        as usize;
                    if pending.len() < header + len {
                        break;
                    }
                    let message: Vec<u8> = pending.drain(..header + len).collect();
                    if !started {
                        started = true;
                        forward.extend_from_slice(&message);
                        continue;
                    }
                    let body = &message[5..];
                    match message[0] {
                        b'Q' if body.starts_with(b"BEGIN") => after_begin = true,
                        b'Q' if body.starts_with(b"COMMIT") => {
                            after_begin = false;
                            let plan = proxy.take(|p| {
                                matches!(p, Plan::CutAfterCommit | Plan::StallAfterCommit(_))
                            });
                            match plan {
                                Some(Plan::CutAfterCommit) => {
                                    let _ = answer_tx.send(Answer::Drop);
                                }
                                Some(Plan::StallAfterCommit(pause)) => {
                                    let _ = answer_tx.send(Answer::Hold(pause));
                                }
                                _ => {}
                            }
                        }
                        b'Q' => {}
                        _ if after_begin => {
                            after_begin = false;
                            match proxy.take(|p| {
                                matches!(p, Plan::CutFirstStatement | Plan::StallFirstStatement(_))
                            }) {
                                Some(Plan::CutFirstStatement) => {
                                    cut = true;
                                    break;
                                }
                                Some(Plan::StallFirstStatement(pause)) => {
                                    let _ = answer_tx.send(Answer::Hold(pause));
                                }
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                    forward.extend_from_slice(&message);
                }
                if !forward.is_empty() && server_write.write_all(&forward).await.is_err() {
                    break;
                }
                if cut {
                    break;
                }
            }
            let _ = kill.send(true);
        });
    }
}
