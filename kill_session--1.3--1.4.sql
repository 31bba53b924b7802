/* kill_session--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kill_session UPDATE TO '1.4'" to load this file. \quit

-- This server's sessions as Oracle's V$SESSION shows them, with the lock
-- graph read once: who blocks whom, in session IDs.
CREATE FUNCTION kill_session_vsession(
    OUT sid bigint,
    OUT "serial#" integer,
    OUT username text,
    OUT status text,
    OUT machine text,
    OUT port integer,
    OUT program text,
    OUT sql_id bigint,
    OUT sql_exec_start timestamptz,
    OUT prev_sql_id bigint,
    OUT logon_time timestamptz,
    OUT last_call_et integer,
    OUT blocking_session_status text,
    OUT blocking_session bigint,
    OUT blocking_sessions bigint[],
    OUT final_blocking_session_status text,
    OUT final_blocking_session bigint,
    OUT event text,
    OUT wait_class text,
    OUT state text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_vsession'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW v$session AS
    SELECT sid, "serial#", username, status, machine, port, program,
           sql_id, sql_exec_start, prev_sql_id, logon_time, last_call_et,
           blocking_session_status, blocking_session, blocking_sessions,
           final_blocking_session_status, final_blocking_session,
           event, wait_class, state
    FROM kill_session_vsession();

COMMENT ON VIEW v$session IS
'Client sessions as Oracle''s V$SESSION shows them: session IDs, the statement''s query ID, and who blocks whom';

GRANT SELECT ON v$session TO PUBLIC;

-- Every node's sessions, as Oracle RAC's GV$SESSION shows them with the
-- instance: each node answers for its own sessions and its own locks.
CREATE FUNCTION kill_session_cluster_vsession(
    OUT inst_id integer,
    OUT sid bigint,
    OUT "serial#" integer,
    OUT username text,
    OUT status text,
    OUT machine text,
    OUT port integer,
    OUT program text,
    OUT sql_id bigint,
    OUT sql_exec_start timestamptz,
    OUT prev_sql_id bigint,
    OUT logon_time timestamptz,
    OUT last_call_et integer,
    OUT blocking_session_status text,
    OUT blocking_session bigint,
    OUT blocking_sessions bigint[],
    OUT final_blocking_session_status text,
    OUT final_blocking_session bigint,
    OUT event text,
    OUT wait_class text,
    OUT state text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_cluster_vsession'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW gv$session AS
    SELECT inst_id, sid, "serial#", username, status, machine, port, program,
           sql_id, sql_exec_start, prev_sql_id, logon_time, last_call_et,
           blocking_session_status, blocking_session, blocking_sessions,
           final_blocking_session_status, final_blocking_session,
           event, wait_class, state
    FROM kill_session_cluster_vsession();

COMMENT ON VIEW gv$session IS
'Client sessions of every node of the cluster as Oracle''s GV$SESSION shows them, each node''s as its v$session shows them to the caller';

GRANT SELECT ON gv$session TO PUBLIC;
