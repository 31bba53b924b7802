/* kill_session--1.5--1.6.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kill_session UPDATE TO '1.6'" to load this file. \quit

-- Release one waiting session: end the heads of the chains that hold it,
-- those that wait for their client (all, without only_idle), and return
-- once the waiter is held by none of them.
CREATE FUNCTION kill_blockers(session text,
                              only_idle boolean DEFAULT true,
                              cancel_first boolean DEFAULT false)
RETURNS TABLE (session_id bigint, pid integer, action text, done boolean,
               why_not text)
AS 'MODULE_PATHNAME', 'kill_blockers'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 2;

COMMENT ON FUNCTION kill_blockers(text, boolean, boolean) IS
'Ends the sessions at the head of the lock chains that hold the given waiting session, and returns once it is held by none of them';

-- What the checker has done: its passes, its reads of the lock graph, and
-- the idle blockers it ended, left alone (their client spoke first) or
-- logged (kill_session.policy_action = log).
CREATE FUNCTION kill_session_checker(
    OUT pid integer,
    OUT passes bigint,
    OUT graph_reads bigint,
    OUT ended bigint,
    OUT left_alone bigint,
    OUT logged bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'kill_session_checker'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW kill_session_checker AS
    SELECT * FROM kill_session_checker();

COMMENT ON VIEW kill_session_checker IS
'The kill_session checker: its process, its passes, its reads of the lock graph, and the idle blockers it ended, left alone or logged since the server started';

GRANT SELECT ON kill_session_checker TO PUBLIC;
