/*-------------------------------------------------------------------------
 *
 * kill.c
 *		kill_session(): end a client session named by its session ID.
 *
 * The kill is SIGTERM, as pg_terminate_backend() sends it: the target's
 * open transaction rolls back, its locks are released and its client gets
 * FATAL 57P01.  The signal is sent while the registry lock is held and the
 * target's slot still names the session, so it can only reach that session
 * (see registry.c).  Then the caller waits until the process is gone.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  kill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "kill_session.h"
#include "session_id.h"

PG_FUNCTION_INFO_V1(kill_session);

/*
 * A process that has exited is reaped by the postmaster within microseconds:
 * yield the CPU to it for up to this long, then sleep in steps.
 */
#define KS_REAP_SPIN_US			2000
#define KS_REAP_STEP_US			100

static void
ks_report_missing(uint32 sid)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("session ID %u does not exist", sid)));
}

/*
 * Add to this backend's FATAL 57P01 who killed it, if kill_session() did.
 * Runs inside emit_log_hook, in ErrorContext; reads only this backend's own
 * slot, which the killer filled before signalling.
 */
void
ks_add_kill_detail(ErrorData *edata)
{
	KsSlot	   *slot = ks_my_slot();

	if (slot == NULL || !slot->killed || slot->pid != MyProcPid)
		return;

	if (slot->killer_sid == slot->sid)
		edata->detail = psprintf("Session %u was killed by itself.", slot->sid);
	else if (slot->killer_sid != 0)
		edata->detail = psprintf("Session %u was killed by role \"%s\" (session %u).",
								 slot->sid, NameStr(slot->killer_role),
								 slot->killer_sid);
	else
		edata->detail = psprintf("Session %u was killed by role \"%s\" (process %d).",
								 slot->sid, NameStr(slot->killer_role),
								 slot->killer_pid);
}

static bool
ks_process_gone(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

static int
ks_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int) syscall(SYS_pidfd_open, pid, 0);
#else
	return -1;
#endif
}

/*
 * Wait until pid is gone -- PostgreSQL's own test: kill(pid, 0) fails --
 * or timeout_ms have passed.  Returns whether it is gone.
 *
 * With a pidfd the wait wakes as the process exits; it then yields the CPU
 * until the postmaster has reaped it, which takes microseconds.  Without one (kernels before 5.3) it
 * polls every millisecond.  Interrupts are served throughout, so the wait
 * can be cancelled; the wait set is released either way, the pidfd by the
 * caller.
 */
static bool
ks_wait_for_exit(pid_t pid, int pidfd, int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	WaitEventSet *volatile set = NULL;
	volatile bool exited = false;
	volatile TimestampTz exited_at = 0;
	volatile bool gone = false;

	PG_TRY();
	{
		if (pidfd >= 0)
		{
			set = ks_create_wait_event_set(3);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			AddWaitEventToSet(set, WL_SOCKET_READABLE, pidfd, NULL, NULL);
		}

		for (;;)
		{
			long		remaining;

			CHECK_FOR_INTERRUPTS();
			if (ks_process_gone(pid))
			{
				gone = true;
				break;
			}
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														deadline);
			if (remaining <= 0)
				break;

			if (exited)
			{
				if (GetCurrentTimestamp() - exited_at < KS_REAP_SPIN_US)
					sched_yield();
				else
					pg_usleep(KS_REAP_STEP_US);
			}
			else if (set != NULL)
			{
				WaitEvent	event;

				if (WaitEventSetWait(set, remaining, &event, 1,
									 WAIT_EVENT_BACKEND_TERMINATION) == 1)
				{
					if (event.events & WL_LATCH_SET)
						ResetLatch(MyLatch);
					if (event.events & WL_SOCKET_READABLE)
					{
						exited = true;
						exited_at = GetCurrentTimestamp();
					}
				}
			}
			else
			{
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Min(remaining, 1),
								 WAIT_EVENT_BACKEND_TERMINATION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_FINALLY();
	{
		if (set != NULL)
			FreeWaitEventSet(set);
	}
	PG_END_TRY();

	return gone;
}

/*
 * End the client session with ID sid: the one function behind every front
 * door.  Checks the caller's privilege, signals the session and waits for it
 * as kill_session.wait_timeout says.  Returns true once the session is gone
 * (or, for the caller's own session or with no wait, once it is marked);
 * false with a WARNING when it did not end in time.
 */
bool
ks_kill_session(uint32 sid)
{
	Oid			my_role = GetUserId();
	int			idx;
	KsSlot	   *slot;
	pid_t		pid;
	Oid			target_role;
	NameData	target_user;
	NameData	target_db;
	char	   *killer_name;
	char	   *target_name;
	int			pidfd = -1;
	int			signal_errno = 0;
	bool		self;
	volatile bool gone = true;

	ks_check_loaded();

	if (!ks_may_kill(my_role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to kill session"),
				 errdetail("Only superusers and roles with the ALTER SYSTEM privilege on parameter \"%s\" may kill sessions.",
						   "kill_session.kill")));

	/* Find the session and the role it runs as. */
	LWLockAcquire(ks_shared->lock, LW_SHARED);
	idx = ks_find_slot_locked(sid);
	if (idx >= 0)
	{
		slot = &ks_shared->slots[idx];
		pid = slot->pid;
		target_role = GetPGProcByNumber(idx)->roleId;
		target_user = slot->user_name;
		target_db = slot->db_name;
	}
	LWLockRelease(ks_shared->lock);
	if (idx < 0)
		ks_report_missing(sid);

	/*
	 * PostgreSQL's own rule: only superusers may signal a superuser's
	 * backend, and one not yet advertising a role counts as one.
	 */
	if ((!OidIsValid(target_role) || superuser_arg(target_role)) &&
		!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to kill session"),
				 errdetail("Only superusers can kill sessions of superusers.")));

	killer_name = GetUserNameFromId(my_role, false);
	target_name = OidIsValid(target_role) ?
		GetUserNameFromId(target_role, true) : NULL;
	if (target_name == NULL)
		target_name = pstrdup(NameStr(target_user));
	self = (pid == MyProcPid);

	/*
	 * Signal under the lock, after checking that the slot still holds the
	 * same session: it cannot finish exiting meanwhile, so pid is still
	 * that session's.  The pidfd is taken here for the same reason.
	 */
	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	if (slot->pid != pid || slot->sid != sid)
	{
		LWLockRelease(ks_shared->lock);
		ks_report_missing(sid);
	}
	if (!slot->killed)
	{
		slot->killed = true;
		slot->killer_sid = ks_my_sid;
		slot->killer_pid = MyProcPid;
		namestrcpy(&slot->killer_role, killer_name);
	}
	if (!self)
	{
		pidfd = ks_pidfd_open(pid);
		/* Backends lead their own process group, as pg_signal_backend knows. */
		if (kill(-pid, SIGTERM) != 0 && kill(pid, SIGTERM) != 0)
			signal_errno = errno;
	}
	LWLockRelease(ks_shared->lock);

	if (signal_errno != 0)
	{
		if (pidfd >= 0)
			close(pidfd);
		if (signal_errno == ESRCH)
			ks_report_missing(sid);
		errno = signal_errno;
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not send signal to process %d: %m", pid)));
	}

	/*
	 * From here the pidfd is closed however the call ends: the LOG line
	 * serves interrupts, so a cancel or statement_timeout can end the call
	 * right there, as well as during the wait.
	 */
	PG_TRY();
	{
		if (ks_my_sid != 0)
			ereport(LOG,
					(errmsg("session %u (pid %d, role \"%s\", database \"%s\") killed by session %u (pid %d, role \"%s\")",
							sid, (int) pid, target_name, NameStr(target_db),
							ks_my_sid, MyProcPid, killer_name)));
		else
			ereport(LOG,
					(errmsg("session %u (pid %d, role \"%s\", database \"%s\") killed by process %d (role \"%s\")",
							sid, (int) pid, target_name, NameStr(target_db),
							MyProcPid, killer_name)));

		if (self)
			ks_self_kill_arm();
		else if (ks_wait_timeout > 0)
			gone = ks_wait_for_exit(pid, pidfd, ks_wait_timeout);
	}
	PG_FINALLY();
	{
		if (pidfd >= 0)
			close(pidfd);
	}
	PG_END_TRY();

	if (gone)
		return true;

	ereport(WARNING,
			(errmsg("session %u marked for kill", sid),
			 errdetail("The session did not end within %d ms; it will end as soon as it can.",
					   ks_wait_timeout)));
	return false;
}

/*
 * kill_session(session text, immediate boolean DEFAULT false)
 *
 * The SQL form of ALTER SYSTEM KILL SESSION 'session' [IMMEDIATE].  The
 * serial# and immediate are accepted for compatibility and ignored.
 */
Datum
kill_session(PG_FUNCTION_ARGS)
{
	text	   *arg;
	uint32_t	sid;
	uint32_t	serial;
	bool		has_serial;

	ks_check_loaded();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missing or invalid session ID"),
				 errhint("Give the session as 'session_id' or 'session_id, serial#', with the ID from SHOW PROCESSLIST.")));
	arg = PG_GETARG_TEXT_PP(0);
	if (!ks_parse_session_id(VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg),
							 &sid, &serial, &has_serial))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missing or invalid session ID"),
				 errhint("Give the session as 'session_id' or 'session_id, serial#', with the ID from SHOW PROCESSLIST.")));

	PG_RETURN_BOOL(ks_kill_session(sid));
}
