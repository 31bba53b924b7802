/* kill_session--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kill_session UPDATE TO '1.1'" to load this file. \quit

-- ALTER SYSTEM DISCONNECT SESSION 'session_id[, serial#]'
--     POST_TRANSACTION | IMMEDIATE
-- With post_transaction the session ends once its transaction has ended,
-- its work kept; otherwise it is killed as kill_session() kills it.
CREATE FUNCTION disconnect_session(session text,
                                   post_transaction boolean DEFAULT false,
                                   immediate boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'disconnect_session'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION disconnect_session(text, boolean, boolean) IS
'Ends the client session with the given session ID after its transaction (post_transaction) or now, like ALTER SYSTEM DISCONNECT SESSION';

-- ALTER SYSTEM CANCEL SQL 'session_id[, serial#]', KILL QUERY session_id
CREATE FUNCTION cancel_sql(session text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cancel_sql'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION cancel_sql(text) IS
'Cancels the statement the client session with the given session ID is running, like ALTER SYSTEM CANCEL SQL';

-- Many kills at once: signal all, then wait for all together.
CREATE FUNCTION kill_sessions(ids bigint[])
RETURNS TABLE (id bigint, killed boolean)
AS 'MODULE_PATHNAME', 'kill_sessions'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10;

COMMENT ON FUNCTION kill_sessions(bigint[]) IS
'Ends the client sessions with the given session IDs, waiting for all of them together';
