/* kill_session--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kill_session UPDATE TO '1.3'" to load this file. \quit

-- The connections to other nodes that this session keeps between calls
-- (kill_session.keep_connections), as postgres_fdw_get_connections() lists
-- its own.
CREATE FUNCTION kill_session_connections(
    OUT server_name text,
    OUT user_name text,
    OUT valid boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_connections'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION kill_session_connections() IS
'The connections to other nodes this session keeps: foreign server, role, and whether it is still valid';

-- Close them all; true if there was one.
CREATE FUNCTION kill_session_disconnect_all()
RETURNS boolean
AS 'MODULE_PATHNAME', 'kill_session_disconnect_all'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION kill_session_disconnect_all() IS
'Closes every connection to other nodes this session keeps; true if there was one';
