-- The Oracle statement is a syntax error in PostgreSQL; the HINT gives the
-- call that does the same, with the user's session string read as
-- PostgreSQL reads it and written out again from its numbers.
ALTER SYSTEM KILL SESSION '3221487726';
ALTER SYSTEM KILL SESSION '3221487726, 1' IMMEDIATE;
alter system kill session '12,7' immediate;
ALTER  SYSTEM
  KILL SESSION	'0012' ;
ALTER SYSTEM KILL SESSION /* a comment */ '12';
ALTER SYSTEM KILL SESSION '12' -- a trailing comment
;
ALTER SYSTEM KILL SESSION E'\x31\062, \u0037';
ALTER SYSTEM KILL SESSION '1'
    '2';
ALTER SYSTEM KILL SESSION $$12, 7$$;
SELECT 1 AS first \; ALTER SYSTEM KILL SESSION '5' \; SELECT 2 AS third;

-- Oracle's other session statements, and MySQL's KILL, teach their
-- PostgreSQL form too.
ALTER SYSTEM DISCONNECT SESSION '3221487726, 1' POST_TRANSACTION;
ALTER SYSTEM DISCONNECT SESSION '3221487726, 1' IMMEDIATE;
ALTER SYSTEM CANCEL SQL '3221487726, 1';
KILL 3221487726;
KILL CONNECTION 3221487726;
KILL QUERY 3221487726;
KILL QUERY 4294967296;
-- Oracle RAC's instance: a node of a cluster.
ALTER SYSTEM CANCEL SQL '1, 2, @3';
-- Oracle 18c's SQL_ID, with and without the instance: a query ID goes
-- into the call; anything else is pointed at v$session.
ALTER SYSTEM CANCEL SQL '3221487726, 1, -3366466085099392503';
ALTER SYSTEM CANCEL SQL '1, 2, @3, 0440101247839410938';
ALTER SYSTEM CANCEL SQL '3221487726, 1, 8k2mq7w1xdf3a';
-- Oracle 23ai's clauses: the nearest call, and what has no equivalent.
-- TIMEOUT n is a drain: the transaction has n seconds to end, then the
-- session is killed.
ALTER SYSTEM KILL SESSION '3221487726, 1' TIMEOUT 30;
ALTER SYSTEM KILL SESSION '3221487726, 1' FORCE TIMEOUT 5;
ALTER SYSTEM KILL SESSION '3221487726, 1' FORCE;
ALTER SYSTEM KILL SESSION '3221487726, 1' NOREPLAY;
ALTER SYSTEM KILL SESSION '3221487726, 1' IMMEDIATE TIMEOUT 30;
ALTER SYSTEM KILL SESSION '3221487726' FORCE TIMEOUT 0;
ALTER SYSTEM DISCONNECT SESSION '3221487726, 1' POST_TRANSACTION TIMEOUT 60;
ALTER SYSTEM DISCONNECT SESSION '3221487726, 1' NOREPLAY;
ALTER SYSTEM DISCONNECT SESSION '3221487726, 1' POST_TRANSACTION IMMEDIATE;
ALTER SYSTEM KILL SESSION '3221487726' TIMEOUT 2147484;
-- MySQL's and OceanBase's full list.
SHOW FULL PROCESSLIST;
-- So do the reference example's two other statements, and Oracle's
-- password change.  The password never appears in the HINT, and so never
-- in the server log: it is written as a placeholder.
CREATE USER kill_user IDENTIFIED BY killuser123;
CREATE USER kill_user IDENTIFIED BY s3cretPW;
CREATE USER "Kill User" IDENTIFIED BY "it's";
ALTER USER kill_user IDENTIFIED BY "N3w-Secret";
ALTER USER "Kill User" IDENTIFIED BY 'an0ther';
CREATE USER x IDENTIFIED BY E'p\xff\xfe';
GRANT CREATE SESSION TO kill_user;
GRANT CREATE SESSION TO kill_user, "Kill User";
-- A HINT is written whole: six names of 64 characters each, quoted.
GRANT CREATE SESSION TO "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2", "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3", "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4", "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5", "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa6";

-- A session string kill_session() would reject: no call, but what is wrong.
ALTER SYSTEM KILL SESSION 'it''s';
ALTER SYSTEM KILL SESSION '12,7,@1';
ALTER SYSTEM KILL SESSION '34112276987, 1, @2';
ALTER SYSTEM KILL SESSION '10000000000';
ALTER SYSTEM KILL SESSION '12, @1';
ALTER SYSTEM KILL SESSION '1,';
ALTER SYSTEM KILL SESSION '-1, 1';
ALTER SYSTEM KILL SESSION '4294967296';

-- Nothing of the user's text is copied into the HINT: a string holding SQL
-- is read as the lexer reads it, in either string syntax.  (psql splits its
-- input at a semicolon outside strings, so the statements go through
-- EXECUTE whole, as a driver would send them.)
CREATE TABLE r9_important (a int);
ALTER SYSTEM KILL SESSION '1\''); DROP TABLE r9_important; --';
SET standard_conforming_strings = off;
DO $$ BEGIN EXECUTE $q$ALTER SYSTEM KILL SESSION '1\''); DROP TABLE r9_important; --'$q$; END $$;
DO $$ BEGIN EXECUTE $q$ALTER SYSTEM KILL SESSION '12\, 3'$q$; END $$;
RESET standard_conforming_strings;
DO $$ BEGIN EXECUTE $q$ALTER SYSTEM KILL SESSION E'1\''); DROP TABLE r9_important; --'$q$; END $$;
SELECT count(*) AS still_there FROM r9_important;
DROP TABLE r9_important;

-- Not that statement: no HINT.
ALTER SYSTEM KILL SESSION 12;
ALTER SYSTEM KILL SESSION '12' NOW;
ALTER SYSTEM KILL;
ALTER SYSTEM KILL SESSION X'12';

SELECT FROM WHERE;
SELECT kill;

-- Inside PL/pgSQL EXECUTE the HINT names the inner statement.
DO $$ BEGIN EXECUTE 'ALTER SYSTEM KILL SESSION ''77'''; END $$;

-- SHOW PROCESSLIST in a database without the extension.
CREATE DATABASE regress_ks_noext;
\c regress_ks_noext
SHOW PROCESSLIST;
SELECT 1 AS still_connected;
\c contrib_regression
DROP DATABASE regress_ks_noext;

-- SHOW PROCESSLIST inside a transaction block and a function.
BEGIN;
SHOW PROCESSLIST \gdesc
SELECT count(*) FROM (SELECT * FROM processlist) s;
COMMIT;
CREATE FUNCTION show_count() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint := 0; r record;
BEGIN
    FOR r IN EXECUTE 'SHOW PROCESSLIST' LOOP n := n + 1; END LOOP;
    RETURN n;
END $$;
SELECT show_count();
DROP FUNCTION show_count();

-- SHOW PROCESSLIST runs through a session-level prepared statement, which
-- the extension keeps: DEALLOCATE and DISCARD ALL remove it, and it is made
-- again at once (a client's own prepared SHOW PROCESSLIST relies on it).
SELECT name, from_sql, statement LIKE '%kill_session: SHOW PROCESSLIST%' AS ours
FROM pg_prepared_statements;
DEALLOCATE ALL;
SELECT name FROM pg_prepared_statements;
DEALLOCATE kill_session_show_processlist;
SELECT name FROM pg_prepared_statements;
-- A user's statement of that name, made before the first SHOW PROCESSLIST
-- of the session, is never replaced, nor run in its place.
\c
PREPARE kill_session_show_processlist AS SELECT 'mine';
SHOW PROCESSLIST;
EXECUTE kill_session_show_processlist;
DEALLOCATE kill_session_show_processlist;
SHOW PROCESSLIST \gdesc
