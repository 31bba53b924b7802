/* kill_session--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION kill_session" to load this file. \quit

-- The process list: one row per client session.
CREATE FUNCTION kill_session_processlist(
    OUT id bigint,
    OUT "user" text,
    OUT host text,
    OUT db text,
    OUT command text,
    OUT "time" integer,
    OUT state text,
    OUT info text,
    OUT pid integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_processlist'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW processlist AS
    SELECT id, "user", host, db, command, "time", state, info, pid
    FROM kill_session_processlist();

COMMENT ON VIEW processlist IS
'Client sessions by session ID, as SHOW PROCESSLIST lists them, plus the pid';

GRANT SELECT ON processlist TO PUBLIC;

-- ALTER SYSTEM KILL SESSION 'session_id[, serial#]' [IMMEDIATE]
-- The privilege is checked inside: superusers, and roles with ALTER SYSTEM
-- on parameter kill_session.kill.
CREATE FUNCTION kill_session(session text, immediate boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'kill_session'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kill_session(text, boolean) IS
'Ends the client session with the given session ID, like ALTER SYSTEM KILL SESSION';
