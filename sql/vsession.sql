-- v$session: Oracle's column names, lower case as PostgreSQL folds them.
SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute
WHERE attrelid = 'v$session'::regclass AND attnum > 0
ORDER BY attnum;

-- Our own row: the session ID of the process list, the PID as serial#,
-- active, running this statement, waiting for nothing, blocked by nobody.
SELECT v.sid = p.id AS same_id,
       v."serial#" = pg_backend_pid() AS serial_is_pid,
       v.username = current_user AS user_ok,
       v.status, v.machine, v.port, v.program,
       v.sql_exec_start = a.query_start AS exec_start_ok,
       v.prev_sql_id,
       v.logon_time = a.backend_start AS logon_ok,
       v.last_call_et BETWEEN 0 AND 5 AS last_call_ok,
       v.blocking_session_status, v.blocking_session, v.blocking_sessions,
       v.final_blocking_session_status, v.final_blocking_session,
       v.event, v.wait_class, v.state
FROM v$session v
JOIN processlist p ON p.pid = v."serial#"
JOIN pg_stat_activity a ON a.pid = v."serial#"
WHERE v."serial#" = pg_backend_pid();

-- SQL_ID is the running statement's query ID, as pg_stat_activity (and
-- pg_stat_statements) show it: the library turns query IDs on under
-- compute_query_id = auto.
SHOW compute_query_id;
SELECT v.sql_id IS NOT NULL AS has_sql_id,
       v.sql_id = a.query_id AS same_as_pg_stat_activity
FROM v$session v JOIN pg_stat_activity a ON a.pid = v."serial#"
WHERE v."serial#" = pg_backend_pid();
-- The same statement twice: the same SQL_ID; another statement: another.
SELECT sql_id AS first_sql_id FROM v$session WHERE "serial#" = pg_backend_pid() \gset
SELECT sql_id AS second_sql_id FROM v$session WHERE "serial#" = pg_backend_pid() \gset
SELECT :first_sql_id = :second_sql_id AS same_statement_same_id;
SELECT sql_id <> :first_sql_id AS other_statement_other_id
FROM v$session WHERE "serial#" = pg_backend_pid();

-- Every session of the process list, and only those.
SELECT count(*) AS disagreements
FROM v$session v FULL JOIN processlist p ON p.id = v.sid
WHERE v.sid IS NULL OR p.id IS NULL OR v."serial#" <> p.pid
   OR v.username IS DISTINCT FROM p."user";

-- Another role sees of a superuser's session what pg_stat_activity shows
-- it: the user and the program, and who blocks whom, but not the rest.
CREATE ROLE regress_ks_vviewer;
SET ROLE regress_ks_vviewer;
SELECT username IS NOT NULL AS user_shown, status, machine, port, program,
       sql_id, sql_exec_start, prev_sql_id, logon_time, last_call_et,
       blocking_session_status, final_blocking_session_status,
       event, wait_class, state
FROM v$session WHERE "serial#" = pg_backend_pid();
RESET ROLE;
DROP ROLE regress_ks_vviewer;
