/*-------------------------------------------------------------------------
 *
 * selfkill.c
 *		Ending the caller's own session after the statement that killed it.
 *
 * The rule: the statement that kills its own session completes and its
 * whole result (every row and its completion message) reaches the client;
 * right after that the session ends with FATAL 57P01, before it would ever
 * report itself ready for another query.  So no connection pooler can hand
 * the session to another client, and nothing else the client sent (a
 * statement, a bound portal, a fastpath call, COPY data, a Sync) runs or
 * commits.  What PostgreSQL had committed when the statement completed
 * stays committed (a query string's implicit transaction commits just
 * before its last statement's completion is sent); everything else rolls
 * back.
 *
 * The same end serves a session marked by disconnect_session(...,
 * post_transaction => true): its transaction callback arms it as the
 * transaction ends, so the session ends right after the statement that
 * ended the transaction (disconnect.c).
 *
 * Every protocol message leaves the backend through pq_putmessage(), that
 * is PqCommMethods->putmessage, so the end of the statement is seen exactly
 * where it is sent.  The states:
 *
 *	NONE	The session has not killed itself.  Nothing is installed: a
 *			session that never kills itself pays nothing.
 *	ARMED	kill_session() named this session (or its transaction ended
 *			after disconnect_session()).  PqCommMethods points at a
 *			copy of the real methods whose putmessage watches the message
 *			types; everything passes through until the statement ends:
 *			  'C' CommandComplete, 'E' ErrorResponse (the statement failed
 *			  after the kill), 's' PortalSuspended (an Execute's row limit
 *			  reached), 'V' FunctionCallResponse (a fastpath call):
 *				the message is sent and flushed -- blocking until a slow
 *				reader has taken it all -- and the session goes to ENDING;
 *			  'Z' ReadyForQuery: never sent; the session goes to ENDING.
 *	ENDING	ProcDiePending is set, as die() sets it for SIGTERM, and
 *			interrupts are processed at once: PostgreSQL's own FATAL 57P01
 *			ends the session, its transaction rolls back, and the DETAIL
 *			says who killed it (kill.c).  Where interrupts are held (an
 *			error being reported), the FATAL comes at the next interrupt
 *			check: the main loop checks right after reading any message
 *			and before acting on it, and a ReadyForQuery met on the way is
 *			still never sent.  Everything else passes through, the FATAL
 *			included.
 *
 * No timer and no polling: a session that has killed itself and is blocked
 * on its client costs no CPU.  Only the leader of a parallel query runs
 * kill_session() (it is PARALLEL UNSAFE); workers swap PqCommMethods for
 * their own queue and are not affected.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  selfkill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq/libpq.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"

#include "kill_session.h"

typedef enum KsSelfKillState
{
	KS_SELF_KILL_NONE,
	KS_SELF_KILL_ARMED,
	KS_SELF_KILL_ENDING
} KsSelfKillState;

static KsSelfKillState self_kill_state = KS_SELF_KILL_NONE;

/* The methods in place when the session killed itself, and the watcher. */
static const PQcommMethods *real_comm = NULL;
static PQcommMethods watch_comm;

/*
 * End the session: request termination as die() does and serve it now if
 * interrupts may be served here; otherwise at the next interrupt check.
 */
static void
ks_self_kill_end(void)
{
	self_kill_state = KS_SELF_KILL_ENDING;
	if (proc_exit_inprogress)
		return;
	InterruptPending = true;
	ProcDiePending = true;
	/* A wait for the client, if the FATAL has to wait, wakes at once. */
	SetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Whether an ErrorResponse reports a FATAL or a PANIC: the session is
 * ending already, and must not be ended a second time while that is sent.
 * Its fields are a type byte and a string each, up to a zero byte; 'V' is
 * the severity, never translated.
 */
static bool
ks_error_ends_session(const char *s, size_t len)
{
	size_t		i = 0;

	while (i < len && s[i] != '\0')
	{
		char		field = s[i++];
		const char *value = s + i;
		size_t		vlen = strnlen(value, len - i);

		if (field == 'V')
			return (vlen == 5 && memcmp(value, "FATAL", 5) == 0) ||
				(vlen == 5 && memcmp(value, "PANIC", 5) == 0);
		i += vlen + 1;
	}
	return false;
}

static int
ks_watch_putmessage(char msgtype, const char *s, size_t len)
{
	int			result;

	/* The session never reports itself ready for another query. */
	if (msgtype == 'Z')
	{
		ks_self_kill_end();
		return 0;
	}

	/* Ended another way meanwhile: that FATAL is the session's one end. */
	if (msgtype == 'E' && self_kill_state == KS_SELF_KILL_ARMED &&
		ks_error_ends_session(s, len))
	{
		self_kill_state = KS_SELF_KILL_ENDING;
		return real_comm->putmessage(msgtype, s, len);
	}

	result = real_comm->putmessage(msgtype, s, len);

	if (self_kill_state == KS_SELF_KILL_ARMED &&
		(msgtype == 'C' || msgtype == 'E' || msgtype == 's' || msgtype == 'V'))
	{
		/* The whole result reaches the client before the session ends. */
		(void) real_comm->flush();
		ks_self_kill_end();
	}
	return result;
}

/*
 * Called by the kill when it names the caller's own session, and at the end
 * of a transaction of a session marked to disconnect: watch for the end of
 * the current statement.
 */
void
ks_end_after_statement(void)
{
	if (self_kill_state != KS_SELF_KILL_NONE)
		return;
	real_comm = PqCommMethods;
	watch_comm = *real_comm;
	watch_comm.putmessage = ks_watch_putmessage;
	PqCommMethods = &watch_comm;
	self_kill_state = KS_SELF_KILL_ARMED;
}
