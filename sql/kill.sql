-- Rejected forms: 22023, never truncated or guessed.
SELECT kill_session(NULL);
SELECT kill_session('abc');
SELECT s AS session, try_kill(s) AS result
FROM (VALUES (''), (' '), (E'\t'), (','), ('+1'), ('-1'), ('1-'), ('abc'),
             ('1a'), ('a1'), ('1.5'), ('1.'), ('1e3'), ('0x10'), ('1,2,3'),
             ('1,'), ('1, '), (',1'), ('0'), ('00'), ('0, 1'),
             ('4294967296'), ('99999999999999999999'), ('1, 4294967296'),
             ('1, -1'), ('1 2'), (E'1\n'), (E'\n1'), ('1;'), ('''1'''),
             ('١٢'), ('１２'), ('1 , 2 , 3')) AS v(s);

-- Accepted forms: blanks around each part, leading zeros, serial#, and
-- IMMEDIATE.  No session has these IDs, so each reaches the lookup: 42704.
SELECT s AS session, try_kill(s) AS result
FROM (VALUES ('4294967295'), (' 4294967295 '), (E'\t4294967295\t'),
             ('0004294967295'), ('4294967295,0'), ('4294967295, 4294967295'),
             (E' 4294967295 ,\t 00012 ')) AS v(s);
SELECT kill_session('4294967295, 12', immediate => true);
SELECT kill_session('4294967295', true);

-- Privilege: none without the grant, own session included.
CREATE ROLE regress_ks_nopriv;
CREATE ROLE regress_ks_dba;
SELECT id AS my_id FROM processlist WHERE pid = pg_backend_pid() \gset
SET ROLE regress_ks_nopriv;
SELECT kill_session('4294967295');
SELECT kill_session(:'my_id');
RESET ROLE;

-- PostgreSQL's own grant gives it ...
GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO regress_ks_dba;
SET ROLE regress_ks_dba;
SELECT kill_session('4294967295');
-- ... but a superuser's session stays out of reach (this one is).
SELECT kill_session(:'my_id');
RESET ROLE;
REVOKE ALTER SYSTEM ON PARAMETER kill_session.kill FROM regress_ks_dba;
SET ROLE regress_ks_dba;
SELECT kill_session('4294967295');
RESET ROLE;

-- Oracle's GRANT ALTER SYSTEM TO / REVOKE ALTER SYSTEM FROM mean the same.
GRANT ALTER SYSTEM TO regress_ks_dba;
SELECT has_parameter_privilege('regress_ks_dba', 'kill_session.kill',
                               'ALTER SYSTEM') AS granted;
SET ROLE regress_ks_dba;
SELECT kill_session('4294967295');
RESET ROLE;
REVOKE ALTER SYSTEM FROM regress_ks_dba;
SELECT has_parameter_privilege('regress_ks_dba', 'kill_session.kill',
                               'ALTER SYSTEM') AS granted;

-- Only the exact form is translated; the rest is PostgreSQL's as before.
GRANT ALTER SYSTEM, regress_ks_nopriv TO regress_ks_dba;
GRANT ALTER SYSTEM TO no_such_role;
-- Oracle's WITH ADMIN OPTION is PostgreSQL's grant option.
GRANT ALTER SYSTEM TO regress_ks_dba WITH ADMIN OPTION;
REVOKE ADMIN OPTION FOR ALTER SYSTEM FROM regress_ks_dba;
-- A role named "alter system" (any CREATEROLE role can make one) makes the
-- Oracle form ambiguous: it fails, and never leaves a privilege in place.
GRANT ALTER SYSTEM TO regress_ks_dba;
CREATE ROLE regress_ks_creator CREATEROLE;
SET ROLE regress_ks_creator;
CREATE ROLE "alter system";
RESET ROLE;
REVOKE ALTER SYSTEM FROM regress_ks_dba;
SELECT has_parameter_privilege('regress_ks_dba', 'kill_session.kill',
                               'ALTER SYSTEM') AS still_granted;
REVOKE ALTER SYSTEM ON PARAMETER kill_session.kill FROM regress_ks_dba;
GRANT ALTER SYSTEM TO regress_ks_dba;
-- The role, quoted, is granted as PostgreSQL always would.
GRANT "alter system" TO regress_ks_dba;
SELECT pg_has_role('regress_ks_dba', 'alter system', 'MEMBER') AS member,
       has_parameter_privilege('regress_ks_dba', 'kill_session.kill',
                               'ALTER SYSTEM') AS granted;
REVOKE "alter system" FROM regress_ks_dba;
DROP ROLE "alter system";
DROP ROLE regress_ks_creator;

-- Granting needs PostgreSQL's own right to grant it.
SET ROLE regress_ks_nopriv;
GRANT ALTER SYSTEM TO regress_ks_nopriv;
RESET ROLE;

-- The 1.1 statements take the same session strings, privilege and errors.
SELECT disconnect_session(NULL, post_transaction => true);
SELECT disconnect_session('1,2,3', post_transaction => true);
SELECT disconnect_session('4294967295', post_transaction => true);
SELECT disconnect_session('4294967295', immediate => true);
SELECT disconnect_session('4294967295', true, true);
SELECT cancel_sql(NULL);
SELECT cancel_sql('-1');
SELECT cancel_sql('4294967295, 1');
SELECT * FROM kill_sessions(NULL);
SELECT * FROM kill_sessions('{}');
SELECT * FROM kill_sessions(ARRAY[4294967296]);
SELECT * FROM kill_sessions(ARRAY[4294967295, 4294967294]);
SELECT * FROM kill_sessions(ARRAY[[1, 2], [3, 4]]);
SET ROLE regress_ks_nopriv;
SELECT disconnect_session('4294967295', post_transaction => true);
SELECT cancel_sql('4294967295');
SELECT * FROM kill_sessions(ARRAY[4294967295]);
RESET ROLE;

DROP ROLE regress_ks_nopriv;
DROP ROLE regress_ks_dba;

-- The setting.
SHOW kill_session.wait_timeout;
SET kill_session.wait_timeout = '2s';
SHOW kill_session.wait_timeout;
-- (the range message differs between versions: its SQLSTATE)
\set VERBOSITY sqlstate
SET kill_session.wait_timeout = -1;
\set VERBOSITY default
RESET kill_session.wait_timeout;
SET kill_session.no_such_setting = 1;

-- IDs that carry a node.  This server is not a node of a cluster
-- (kill_session.node_id = 0), so a session of node 3 is not here.
SHOW kill_session.node_id;
SELECT kill_session('34112276987');
SELECT kill_session('4112276987, 1, @3');
SELECT disconnect_session('34112276987', post_transaction => true);
SELECT cancel_sql('34112276987, 0, @3');
SELECT * FROM kill_sessions(ARRAY[34112276987]);
-- @N must agree with the node the ID carries.
SELECT kill_session('34112276987, 1, @2');
-- A node's ID whose local part is not a session ID, a node out of range.
SELECT kill_session('30000000000');
SELECT kill_session('1, 1, @0');
SELECT kill_session('1, 1, @10000');
SELECT * FROM kill_sessions(ARRAY[30000000000]);
SELECT * FROM kill_sessions(ARRAY[100000000000000]);
-- @N puts its node on a local ID.
SELECT kill_session('4294967295, 1, @1');
-- The node is fixed at server start.
SET kill_session.node_id = 1;
SHOW kill_session.node_timeout;
\set VERBOSITY sqlstate
SET kill_session.node_timeout = 0;
\set VERBOSITY default
