# kill_session/Makefile

MODULE_big = kill_session
OBJS = \
	$(WIN32RES) \
	action.o \
	activity.o \
	blockers.o \
	cancel.o \
	cancel_handler.o \
	checker.o \
	connection.o \
	disconnect.o \
	forward.o \
	history.o \
	kill.o \
	kill_session.o \
	lockgraph.o \
	node_answer.o \
	node_call.o \
	node_drive.o \
	node_option.o \
	oracle_hint.o \
	privilege.o \
	policy.o \
	processlist.o \
	record.o \
	record_view.o \
	registry.o \
	registry_cancel.o \
	resolve.o \
	selfkill.o \
	session_id.o \
	sql_scan.o \
	vsession.o

EXTENSION = kill_session
DATA = kill_session--1.0.sql kill_session--1.0--1.1.sql kill_session--1.1--1.2.sql \
	kill_session--1.2--1.3.sql kill_session--1.3--1.4.sql \
	kill_session--1.4--1.5.sql kill_session--1.5--1.6.sql
PGFILEDESC = "kill_session - Oracle-mode ALTER SYSTEM KILL SESSION"

REGRESS = setup processlist kill oracle vsession
# The expected files were made in a UTF-8 database: psql aligns the rows
# of characters outside ASCII ('kill' has U+0661 and U+FF11) by their width
# there, and by their bytes in a SQL_ASCII one.  pg_regress creates its
# databases (and sets the client's encoding) in UTF8 for the regression and
# isolation suites alike, with the C locale: the same output whatever the
# caller's LANG, even in the POSIX locale, whose initdb gives SQL_ASCII.
ENCODING = UTF8
NO_LOCALE = 1
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(srcdir)/kill_session.conf
ISOLATION = kill_locks kill_idle_in_transaction disconnect_commit \
	disconnect_rollback vsession_blockers vsession_deadlock kill_blockers_queue \
	idle_blocker_policy
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/kill_session.conf
TAP_TESTS = 1
EXTRA_CLEAN = fuzz/build bench/out

# The forwarding files reach other nodes with libpq, as postgres_fdw does.
PG_CPPFLAGS = -I$(libpq_srcdir)
SHLIB_LINK_INTERNAL = $(libpq)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
