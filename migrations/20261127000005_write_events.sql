-- The events' write as one function (the outbox of 20261126000004_holds_and_events.sql, positioned the same
-- way): a change may now write its events in the same statement as the change itself rather than in a statement
-- of their own. An order does, so that it holds its products' row locks for one round trip less: under a queue
-- on one hot product, every round trip taken under the lock is a round trip every order behind it waits for.
--
-- Writes the events (ids[i], resource_ids[i], types[i], data[i]) in that order, each at the position that
-- orders it after every earlier event of its resources, and records that position for the resources. The
-- caller holds the lock on each resource (its row, or a new resource of its own). Answers how many it wrote.
CREATE FUNCTION write_events(ids uuid[], resource_ids uuid[], types text[], data text[]) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH position AS (
        SELECT greatest(
            pg_current_xact_id(),
            (SELECT max(commit_xid) FROM event_resources WHERE resource_id = ANY(resource_ids))
        ) AS xid
    ), resources AS (
        INSERT INTO event_resources (resource_id, commit_xid)
        SELECT DISTINCT r.id, position.xid FROM unnest(resource_ids) AS r(id), position
        ON CONFLICT (resource_id) DO UPDATE SET commit_xid = EXCLUDED.commit_xid
    ), written AS (
        INSERT INTO events (id, commit_xid, type, resource_id, data)
        SELECT e.id, position.xid, e.type, e.resource_id, e.data::jsonb
        FROM unnest(ids, resource_ids, types, data) WITH ORDINALITY AS e(id, resource_id, type, data, n), position
        ORDER BY e.n
        RETURNING 1
    )
    SELECT count(*) FROM written
$$;
