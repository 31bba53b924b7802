/*-------------------------------------------------------------------------
 *
 * disconnect.c
 *		disconnect_session(): Oracle's ALTER SYSTEM DISCONNECT SESSION
 *		'sid, serial#' POST_TRANSACTION | IMMEDIATE.
 *
 * POST_TRANSACTION lets the session finish the transaction it is in, then
 * ends it -- PostgreSQL has nothing like it: pg_terminate_backend() always
 * rolls the work back.  IMMEDIATE, or neither, is exactly kill_session().
 *
 * "Its transaction" is the one in progress when the mark is set: for a
 * session in an explicit block, the block; for a procedure or DO block, the
 * transaction running at that moment.  When it ends, committed or rolled
 * back as its client decides, the session ends; nothing that starts after
 * it runs.  A session in no transaction ends at once, with nothing rolled
 * back because nothing was open.
 *
 * The disconnecter only marks the session in the registry and wakes it
 * (a sinval catchup interrupt, KS_SIGNAL_WAKE); the session decides from
 * its own state, which it alone knows for certain -- never from its status
 * entry, which track_activities = off empties.  Where it decides:
 *
 *	- at the end of every transaction (the transaction callback):
 *	  * waiting for its client (a catchup's empty transaction, served only
 *		while the backend reads its client's next message, outside any
 *		transaction): it ends now;
 *	  * inside a procedure that commits or rolls back (a nonatomic SPI
 *		context): it ends now, after the transaction and before anything
 *		of the next one runs;
 *	  * otherwise: its transaction's end reaches the client whole, then it
 *		ends (selfkill.c);
 *	- as a failed block is left (ROLLBACK of an aborted block runs no
 *	  transaction callback; ks_disconnect_leaving_block()): the same.
 *
 * Why that is race-free: the mark is written under the registry lock
 * before the wake is sent, and the session reads it after.  The wake stays
 * pending until the session either starts a transaction -- whose end then
 * reads the mark -- or waits for its client outside one, where it serves
 * the wake at once.  So a session that missed the mark at one of these
 * points always meets another; a transaction that had begun before the
 * mark always runs to its end, as its client decides; and one that begins
 * at the same moment either runs to completion and is followed by the
 * end, or is refused before it does anything.
 *
 * The call returns true once the session is gone, if it had no transaction
 * (so a pooler has already seen its connection close); at once, if it is
 * in one.
 *
 * This file owns both sides of a disconnect.  It must not be called by the
 * files below it (action.c, kill.c, selfkill.c, the forwarding files, the
 * leaves).
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  disconnect.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "kill_session.h"

PG_FUNCTION_INFO_V1(disconnect_session);

#define KS_DISCONNECT_WHAT	"disconnect session"

/*
 * Registered in every client backend: a session marked to disconnect ends
 * once the transaction it was in has ended.
 */
void
ks_disconnect_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (!ks_my_mark(KS_DISCONNECT, NULL, NULL))
		return;

	/*
	 * A message is being read: the backend waits for its client, and this is
	 * the empty transaction with which it serves the wake.
	 */
	if (pq_is_reading_msg())
		ks_end_now(KS_ENDED_IDLE);
	else if (SPI_inside_nonatomic_context())
		ks_end_now(KS_ENDED_AFTER_XACT);
	else
		ks_end_after_transaction();
}

/*
 * Called before a transaction statement runs in a failed block: leaving
 * it ends the block's transaction without a transaction callback.
 */
void
ks_disconnect_leaving_block(void)
{
	if (ks_my_mark(KS_DISCONNECT, NULL, NULL))
		ks_end_after_transaction();
}

/*
 * Whether the backend pid is idle in a failed block: its transaction has
 * ended (its PGPROC holds no local transaction ID) but its client's
 * ROLLBACK is still to come.  Only the status entry tells; with
 * track_activities off, the call waits for it as for a session in no
 * transaction, up to kill_session.wait_timeout.
 */
static bool
ks_in_failed_block(pid_t pid)
{
	KsActivity	activity;

	return ks_backend_activity(pid, &activity) &&
		activity.state == STATE_IDLEINTRANSACTION_ABORTED;
}

/* The longest drain deadline, in seconds: Oracle's TIMEOUT's range. */
#define KS_MAX_DRAIN_S	2147483

/*
 * The timeout argument at argno, the drain deadline, in milliseconds from
 * now; 0 if none.  Only with post_transaction; positive and at most
 * KS_MAX_DRAIN_S seconds, else 22023.
 */
static int
ks_drain_arg(FunctionCallInfo fcinfo, int argno, bool post_transaction)
{
	Interval   *timeout;
	double		ms;

	if (argno >= PG_NARGS() || PG_ARGISNULL(argno))
		return 0;
	if (!post_transaction)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a drain deadline needs post_transaction"),
				 errhint("disconnect_session(id, post_transaction => true, timeout => ...) ends the session after its transaction, or kills it at the deadline.")));
	timeout = PG_GETARG_INTERVAL_P(argno);
	ms = ((double) timeout->time +
		  ((double) timeout->day + (double) timeout->month * DAYS_PER_MONTH) *
		  USECS_PER_DAY) / 1000.0;
	if (!(ms >= 1.0 && ms <= KS_MAX_DRAIN_S * 1000.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("drain deadline must be between 1 ms and %d seconds", KS_MAX_DRAIN_S),
				 errhint("To end the session now, use disconnect_session(id, immediate => true).")));
	return (int) ms;
}

/*
 * disconnect_session(session text, post_transaction boolean DEFAULT false,
 *					  immediate boolean DEFAULT false,
 *					  timeout interval DEFAULT NULL,
 *					  reason text DEFAULT NULL) returns boolean
 *
 * With post_transaction: true once the session is marked, if it is in a
 * transaction, or once it is gone, if it was not (with kill_session.
 * wait_timeout = 0, once marked); false with a WARNING if it did not end
 * within kill_session.wait_timeout.  Otherwise kill_session().
 */
Datum
disconnect_session(PG_FUNCTION_ARGS)
{
	MemoryContext context = CurrentMemoryContext;
	uint32		sid;
	bool		post_transaction = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	bool		immediate = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	const char *reason;
	KsSession	target;
	KsKiller	me;
	KsProcState before;
	KsProcState now;
	bool		self;
	int			pidfd = -1;
	int			timeout_ms = ks_wait_timeout_ms();
	volatile bool signalled = false;
	volatile bool waited = false;
	volatile bool gone = true;
	Datum		result;
	int			deadline_ms;

	ks_check_loaded();
	reason = ks_reason_arg(fcinfo, 4);
	deadline_ms = ks_drain_arg(fcinfo, 3, post_transaction);
	if (ks_session_arg(fcinfo, 0,
					   post_transaction ? KS_DISCONNECT_WHAT : KS_KILL_WHAT,
					   post_transaction ? KS_H_DISCONNECT_POST : KS_H_DISCONNECT,
					   reason, &sid, NULL, NULL, &result))
		return result;
	if (post_transaction && immediate)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("POST_TRANSACTION and IMMEDIATE cannot be used together"),
				 errhint("POST_TRANSACTION waits for the session's transaction; IMMEDIATE rolls it back now.")));
	if (!post_transaction)
		PG_RETURN_BOOL(ks_kill_session(sid, KS_H_DISCONNECT, reason));

	ks_check_privilege(KS_DISCONNECT_WHAT);
	if (deadline_ms > 0 && !ks_registry_checker_running())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot set a drain deadline: the kill_session checker is not running"),
				 errdetail("The deadline is kept by the background worker \"kill_session checker\", so that it holds when the caller has gone."),
				 errhint("Check max_worker_processes and the server log.")));
	ks_aim(sid, KS_DISCONNECT_WHAT, false, reason, &target, &me);
	if (deadline_ms > 0)
		me.deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  deadline_ms);
	self = target.pid == MyProcPid;
	ks_record_begin(KS_H_DISCONNECT_POST, sid, &target, &me);

	/*
	 * The caller's own session is in this statement's transaction.  Another
	 * is woken, and what it was doing just before tells whether to wait: in a
	 * transaction (its PGPROC holds a local transaction ID), it ends after
	 * it; otherwise it ends at once.
	 */
	PG_TRY();
	{
		ks_mark(sid, &target, KS_DISCONNECT, &me, self ? 0 : KS_SIGNAL_WAKE,
				self ? NULL : &pidfd, &before);
		signalled = true;
		if (me.deadline != 0)
			ks_registry_wake_checker();
		ks_log_action(sid, &target,
					  me.deadline != 0 ?
					  psprintf("marked to disconnect after its transaction, or at its drain deadline %s,",
							   timestamptz_to_str(me.deadline)) :
					  "marked to disconnect after its transaction", &me);
		if (!self && !before.in_transaction && !ks_in_failed_block(target.pid) &&
			timeout_ms > 0)
		{
			waited = true;
			gone = ks_wait_gone(target.pid, pidfd, timeout_ms);
		}
	}
	PG_CATCH();
	{
		if (pidfd >= 0)
			close(pidfd);
		ks_record_error(&me, KS_H_DISCONNECT_POST, signalled, false, context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (pidfd >= 0)
		close(pidfd);

	if (gone)
	{
		if (waited)
			ks_record_end(&me, KS_H_DISCONNECT_POST, KS_O_EXITED, NULL);
		else
			ks_record_end(&me, KS_H_DISCONNECT_POST, KS_O_MARKED,
						  timeout_ms == 0 && !self && !before.in_transaction ?
						  "no wait: kill_session.wait_timeout is 0" :
						  me.deadline != 0 ?
						  psprintf("it ends after its transaction, or at its drain deadline in %d ms",
								   deadline_ms) :
						  "it ends after its transaction");
		PG_RETURN_BOOL(true);
	}
	if (ks_registry_proc_state(sid, target.pid, &now) && now.in_transaction)
	{
		ks_record_end(&me, KS_H_DISCONNECT_POST, KS_O_MARKED,
					  "it began a transaction as it was marked; it ends after it");
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is in a transaction",
						ks_global_id(sid)),
				 errdetail("It began one as it was marked; it will end after it.")));
		PG_RETURN_BOOL(true);
	}
	ks_record_end(&me, KS_H_DISCONNECT_POST, KS_O_MARKED,
				  psprintf("it did not end within %d ms", timeout_ms));
	ereport(WARNING,
			(errmsg("session " INT64_FORMAT " marked to disconnect",
					ks_global_id(sid)),
			 errdetail("The session did not end within %d ms; it will end as soon as it can.",
					   timeout_ms)));
	PG_RETURN_BOOL(false);
}
