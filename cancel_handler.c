/*-------------------------------------------------------------------------
 *
 * cancel_handler.c
 *		The session's side of a cancel by SQL_ID: the SIGINT handler every
 *		client session runs, which decides as the signal arrives whether it
 *		still runs the statement asked for, and the DETAIL of a cancel it
 *		took.
 *
 * The handler is installed with sigaction() in front of the one it
 * replaces (PostgreSQL's StatementCancelHandler, or on 17 and later the
 * dispatcher), and calls that one for every SIGINT it does not keep.  The
 * session publishes in the registry whether its handler is still this
 * library's; cancel.c refuses a cancel by SQL_ID of one whose handler
 * another library has replaced.
 *
 * This file owns the handler.  It must not call cancel.c, the caller's
 * side; the entry file installs it and asks it for the DETAIL.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  cancel_handler.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <link.h>
#include <signal.h>
#include <unistd.h>

#include "access/xact.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"

#include "kill_session.h"

/*
 * The SIGINT handler this library replaced, which its own calls for every
 * SIGINT it does not keep: PostgreSQL's StatementCancelHandler, or the
 * handler of a library that replaced it before.
 */
static struct sigaction ks_prev_sigint;

/* Whether this session's SIGINT handler was this library's when last seen. */
static bool ks_handler_ours = false;

/* Set while the previous handler runs: see ks_sigint_action(). */
static volatile sig_atomic_t ks_in_prev_handler = 0;

/*
 * The cancel by SQL_ID this session took, for the DETAIL of its 57014: who
 * asked, and the start of the statement it cancelled.  Written by the
 * handler, which is the session itself, before it sets QueryCancelPending;
 * read as the cancel is reported.
 */
static volatile sig_atomic_t ks_taken = 0;
static KsKiller ks_taken_by;
static TimestampTz ks_taken_stmt_start;

/*
 * The SIGINT handler of every client session: PostgreSQL's own, but for a
 * cancel by SQL_ID, which it takes only if it still runs that statement.
 * Signal-safe: it reads its own registry slot and status entry, writes its
 * answer without a lock, and calls the handler it replaced for the rest.
 */
static void
ks_sigint_action(int signo, siginfo_t *info, void *context)
{
	int			save_errno = errno;
	int64		query_id;
	KsKiller	by;
	KsSqlCancel ask = KS_SQL_CANCEL_NONE;

	/*
	 * A child forked by system() keeps the handler until it execs: there
	 * SIGINT does what it does by default, as PostgreSQL's own handlers do
	 * from 17 on, and no shared memory is touched.
	 */
	if (MyProcPid != (int) getpid())
	{
		signal(SIGINT, SIG_DFL);
		raise(SIGINT);
		return;
	}
	ask = ks_my_cancel_ask(&query_id, &by);
	if (ask == KS_SQL_CANCEL_ASKED || ask == KS_SQL_CANCEL_ABANDONED)
	{
		volatile PgBackendStatus *be = MyBEEntry;
		bool		running;
		TimestampTz start = 0;

		running = ActivePortal != NULL && be != NULL &&
			(be->st_state == STATE_RUNNING || be->st_state == STATE_FASTPATH) &&
			(int64) be->st_query_id == query_id;
		if (running)
		{
			/* Named before the cancel can be reported. */
			start = be->st_activity_start_timestamp;
			ks_taken_by = by;
			ks_taken_stmt_start = start;
			ks_taken = 1;
		}
		ks_my_cancel_answer(ask,
							running ? KS_SQL_CANCEL_TAKEN : KS_SQL_CANCEL_REFUSED,
							start);
		if (!running)
		{
			errno = save_errno;
			return;
		}
	}

	/*
	 * The handler replaced.  A library that replaced this one afterwards and
	 * calls it in turn could lead back here (from PostgreSQL 18 on, the
	 * replaced handler is pqsignal()'s dispatcher, which calls whatever
	 * pqsignal() installed last): once is enough.
	 */
	if (!ks_in_prev_handler)
	{
		ks_in_prev_handler = 1;
		errno = save_errno;
		if (ks_prev_sigint.sa_flags & SA_SIGINFO)
			ks_prev_sigint.sa_sigaction(signo, info, context);
		else
			ks_prev_sigint.sa_handler(signo);
		ks_in_prev_handler = 0;
	}
	errno = save_errno;
}

/* dl_iterate_phdr()'s callback: the count of objects ever loaded, at once. */
static int
ks_loaded_objects(struct dl_phdr_info *info, size_t size, void *data)
{
	if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof(info->dlpi_adds))
		*(unsigned long long *) data = info->dlpi_adds;
	else
		*(unsigned long long *) data = ~0ULL;	/* unknown: look every time */
	return 1;
}

/* Whether SIGINT's handler is this library's now. */
static bool
ks_sigint_is_ours(void)
{
	struct sigaction now;

	if (sigaction(SIGINT, NULL, &now) != 0)
		return false;
	return (now.sa_flags & SA_SIGINFO) != 0 &&
		now.sa_sigaction == ks_sigint_action;
}

static void
ks_cancel_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		ks_check_cancel_handler();
}

/*
 * What pqsignal() installs for an instant below, with SIGINT blocked (not
 * SIG_IGN, which would drop a SIGINT pending meanwhile).
 */
#if PG_VERSION_NUM < 180000
static void
ks_sigint_placeholder(SIGNAL_ARGS)
{
}
#endif

/*
 * Called once the session is registered.  The handler is installed with
 * sigaction() itself, so that it can be told apart from any other: on
 * PostgreSQL 17 and later, pqsignal() installs one dispatcher for every
 * handler.  The handler it replaces is kept to be called: up to 17 it is
 * the function pqsignal() returns (behind 17's dispatcher), from 18 on,
 * where pqsignal() returns nothing, the dispatcher itself.  A SIGINT that
 * is ignored or left to the default is left so, and the session takes no
 * cancel by SQL_ID.
 */
void
ks_install_cancel_handler(void)
{
	struct sigaction act;
	sigset_t	sigint,
				old_mask;

	/* A SIGINT that comes meanwhile waits for the new handler. */
	sigemptyset(&sigint);
	sigaddset(&sigint, SIGINT);
	sigprocmask(SIG_BLOCK, &sigint, &old_mask);
	if (sigaction(SIGINT, NULL, &ks_prev_sigint) == 0 &&
		((ks_prev_sigint.sa_flags & SA_SIGINFO) ||
		 (ks_prev_sigint.sa_handler != SIG_IGN &&
		  ks_prev_sigint.sa_handler != SIG_DFL)))
	{
#if PG_VERSION_NUM < 180000
		if (!(ks_prev_sigint.sa_flags & SA_SIGINFO))
			ks_prev_sigint.sa_handler = pqsignal(SIGINT, ks_sigint_placeholder);
#endif
		act = ks_prev_sigint;
		act.sa_sigaction = ks_sigint_action;
		act.sa_flags |= SA_SIGINFO;
		if (sigaction(SIGINT, &act, NULL) != 0)
			(void) sigaction(SIGINT, &ks_prev_sigint, NULL);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	ks_check_cancel_handler();
	RegisterXactCallback(ks_cancel_xact_callback, NULL);
}

/*
 * Publish in the registry whether SIGINT's handler is still this library's:
 * a cancel by SQL_ID is refused before it is sent to a session whose
 * handler another library replaced.  Called as the handler is installed,
 * as each statement is parsed, after each utility statement (LOAD) and at
 * each transaction's end: one system call, and the registry lock only when
 * the answer changes.
 */
void
ks_check_cancel_handler(void)
{
	static unsigned long long seen_adds = 0;
	static bool seen = false;
	unsigned long long adds = 0;
	bool		ours;

	if (ks_my_session_id() == 0)
		return;

	/*
	 * Another library's _PG_init is what replaces the handler: look again
	 * only when the process has loaded an object since the last look.  The
	 * dynamic loader counts the objects ever added; reading that count takes
	 * its lock, not a system call, so that every statement pays nothing
	 * measurable.
	 */
	dl_iterate_phdr(ks_loaded_objects, &adds);
	if (seen && adds == seen_adds && adds != ~0ULL)
		return;
	seen = true;
	seen_adds = adds;
	ours = ks_sigint_is_ours();
	if (ours != ks_handler_ours)
	{
		ks_registry_publish_handler(ours);
		ks_handler_ours = ours;
	}
}

/*
 * Who cancelled this session's statement by SQL_ID, for the DETAIL of its
 * 57014: the asker, if this statement is the one the handler took.  Once
 * told, or for another statement, forgotten.
 */
static bool
ks_cancel_taken_by(KsKiller *by)
{
	volatile PgBackendStatus *be = MyBEEntry;
	bool		mine;

	if (!ks_taken)
		return false;
	mine = be != NULL && be->st_activity_start_timestamp == ks_taken_stmt_start;
	if (mine)
		*by = ks_taken_by;
	ks_taken = 0;
	return mine;
}

/*
 * Add to this backend's ERROR 57014 who asked for the cancel by SQL_ID
 * that its handler took, even one that stopped waiting; false if none did
 * (then action.c's ks_add_end_detail() says who cancelled it).  Runs
 * inside emit_log_hook, in ErrorContext.
 */
bool
ks_add_cancel_detail(ErrorData *edata)
{
	KsKiller	by;

	if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED ||
		!ks_cancel_taken_by(&by))
		return false;
	edata->detail = ks_cancel_detail(ks_my_session_id(), &by);
	return true;
}
