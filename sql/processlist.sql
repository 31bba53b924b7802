-- The view: lower-case columns, pid as in pg_stat_activity.
SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute
WHERE attrelid = 'processlist'::regclass AND attnum > 0
ORDER BY attnum;

-- SHOW PROCESSLIST: the reference's eight upper-case headers.
SHOW PROCESSLIST \gdesc
SHOW processlist \gdesc

-- Our own row: a query, active, INFO is the statement.
SELECT id BETWEEN 1 AND 4294967295 AS id_ok,
       "user" = current_user AS user_ok,
       host,
       db = current_database() AS db_ok,
       command,
       "time" BETWEEN 0 AND 5 AS time_ok,
       state,
       info
FROM processlist
WHERE pid = pg_backend_pid();

-- SHOW PROCESSLIST returns the same row (this is the only session).
SHOW PROCESSLIST \gset sp_
SELECT :'sp_ID' = (SELECT id::text FROM processlist
                   WHERE pid = pg_backend_pid()) AS same_id,
       :'sp_USER' = current_user AS user_ok,
       :'sp_HOST' AS host,
       :'sp_COMMAND' AS command,
       :'sp_STATE' AS state,
       :'sp_INFO' AS info;

-- The ID is stable for the session.
SELECT id AS first_id FROM processlist WHERE pid = pg_backend_pid() \gset
SELECT id = :first_id AS same FROM processlist WHERE pid = pg_backend_pid();

-- The view agrees with pg_stat_activity row for row.
SELECT count(*) AS client_backends
FROM pg_stat_activity WHERE backend_type = 'client backend';
SELECT count(*) AS disagreements
FROM processlist p
FULL JOIN (SELECT * FROM pg_stat_activity
           WHERE backend_type = 'client backend') a USING (pid)
WHERE p.pid IS NULL OR a.pid IS NULL
   OR p."user" IS DISTINCT FROM a.usename::text
   OR p.db IS DISTINCT FROM a.datname::text;

-- Another role sees its own row in full, and the same row count.
CREATE ROLE regress_ks_viewer;
SET ROLE regress_ks_viewer;
SELECT count(*) AS sessions FROM processlist;
-- the superuser's session is listed, details hidden
SELECT "user" = session_user AS user_ok, host, command, "time", state, info
FROM processlist WHERE pid = pg_backend_pid();
RESET ROLE;
GRANT pg_read_all_stats TO regress_ks_viewer;
SET ROLE regress_ks_viewer;
SELECT host, command, state, info
FROM processlist WHERE pid = pg_backend_pid();
RESET ROLE;
DROP ROLE regress_ks_viewer;

-- SHOW of real settings is untouched.
SHOW client_min_messages;
SHOW kill_session.wait_timeout;

-- The cluster's list: on a single server, its own sessions as node 0.
SELECT node, "user", db, command, state
FROM cluster_processlist WHERE pid = pg_backend_pid();
SELECT count(*) = (SELECT count(*) FROM processlist) AS same
FROM cluster_processlist;
SELECT * FROM kill_session_nodes;
