/* kill_session--1.4--1.5.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kill_session UPDATE TO '1.5'" to load this file. \quit

-- Every action takes a reason: told to the session, logged on every node
-- the call reaches, and kept in kill_session_history.
DROP FUNCTION kill_session(text, boolean);
CREATE FUNCTION kill_session(session text, immediate boolean DEFAULT false,
                             reason text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'kill_session'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kill_session(text, boolean, text) IS
'Ends the client session with the given session ID, like ALTER SYSTEM KILL SESSION';

DROP FUNCTION kill_sessions(bigint[]);
CREATE FUNCTION kill_sessions(ids bigint[], reason text DEFAULT NULL)
RETURNS TABLE (id bigint, killed boolean)
AS 'MODULE_PATHNAME', 'kill_sessions'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10;

COMMENT ON FUNCTION kill_sessions(bigint[], text) IS
'Ends the client sessions with the given session IDs, waiting for all of them together';

-- With post_transaction and a timeout: Oracle 23ai's drain (KILL SESSION
-- ... TIMEOUT n); a session whose transaction is still open at the
-- deadline is killed, whether or not the caller is still there.
DROP FUNCTION disconnect_session(text, boolean, boolean);
CREATE FUNCTION disconnect_session(session text,
                                   post_transaction boolean DEFAULT false,
                                   immediate boolean DEFAULT false,
                                   timeout interval DEFAULT NULL,
                                   reason text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'disconnect_session'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION disconnect_session(text, boolean, boolean, interval, text) IS
'Ends the client session with the given session ID after its transaction (post_transaction, killed at the timeout''s deadline) or now, like ALTER SYSTEM DISCONNECT SESSION';

DROP FUNCTION cancel_sql(text);
CREATE FUNCTION cancel_sql(session text, reason text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cancel_sql'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION cancel_sql(text, text) IS
'Cancels the statement the client session with the given session ID is running, like ALTER SYSTEM CANCEL SQL';

-- What was done to which session, by whom, why, and how it ended: the
-- newest kill_session.history_size actions of this server.
CREATE FUNCTION kill_session_history(
    OUT seq bigint,
    OUT at timestamptz,
    OUT action text,
    OUT session_id bigint,
    OUT node integer,
    OUT pid integer,
    OUT username text,
    OUT database text,
    OUT application_name text,
    OUT client text,
    OUT state text,
    OUT xact_start timestamptz,
    OUT sql_id bigint,
    OUT prev_sql_id bigint,
    OUT statement text,
    OUT blocking integer,
    OUT actor_session_id bigint,
    OUT actor_pid integer,
    OUT actor_username text,
    OUT actor_node integer,
    OUT origin_node integer,
    OUT origin_session_id bigint,
    OUT origin_pid integer,
    OUT origin_username text,
    OUT origin_vouched boolean,
    OUT reason text,
    OUT outcome text,
    OUT outcome_detail text,
    OUT done_at timestamptz,
    OUT ended_at timestamptz,
    OUT exit_ms double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_history'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW kill_session_history AS
    SELECT * FROM kill_session_history();

COMMENT ON VIEW kill_session_history IS
'Every action on a session of this server: the session as it was, the actor and its origin, the reason and the outcome';

GRANT SELECT ON kill_session_history TO PUBLIC;

-- How many actions ended how, for monitoring.
CREATE FUNCTION kill_session_stats(
    OUT action text,
    OUT outcome text,
    OUT actor text,
    OUT count bigint,
    OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_stats'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW kill_session_stats AS
    SELECT * FROM kill_session_stats();

COMMENT ON VIEW kill_session_stats IS
'How many actions on sessions ended in each outcome, by action and kind of actor, since kill_session_stats_reset()';

GRANT SELECT ON kill_session_stats TO PUBLIC;

CREATE FUNCTION kill_session_stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'kill_session_stats_reset'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION kill_session_stats_reset() FROM PUBLIC;

-- Every node's history, as Oracle RAC's GV$ views show each instance's:
-- each node answers for its own record.
CREATE FUNCTION kill_session_cluster_history(
    OUT inst_id integer,
    OUT seq bigint,
    OUT at timestamptz,
    OUT action text,
    OUT session_id bigint,
    OUT node integer,
    OUT pid integer,
    OUT username text,
    OUT database text,
    OUT application_name text,
    OUT client text,
    OUT state text,
    OUT xact_start timestamptz,
    OUT sql_id bigint,
    OUT prev_sql_id bigint,
    OUT statement text,
    OUT blocking integer,
    OUT actor_session_id bigint,
    OUT actor_pid integer,
    OUT actor_username text,
    OUT actor_node integer,
    OUT origin_node integer,
    OUT origin_session_id bigint,
    OUT origin_pid integer,
    OUT origin_username text,
    OUT origin_vouched boolean,
    OUT reason text,
    OUT outcome text,
    OUT outcome_detail text,
    OUT done_at timestamptz,
    OUT ended_at timestamptz,
    OUT exit_ms double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_cluster_history'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW gkill_session_history AS
    SELECT * FROM kill_session_cluster_history();

COMMENT ON VIEW gkill_session_history IS
'The history of every node of the cluster, each node''s as its kill_session_history shows it to the caller';

GRANT SELECT ON gkill_session_history TO PUBLIC;
