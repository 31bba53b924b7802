/*-------------------------------------------------------------------------
 *
 * registry.c
 *		Client session IDs: a shared-memory map of ID <-> backend.
 *
 * Every client backend gets an ID when it has authenticated: a positive
 * 32-bit number, handed out in sequence from a random starting point chosen
 * when shared memory is created (at server start and again after crash
 * recovery), so that an ID copied before a restart does not name a session
 * of the new server life.  IDs are not reused while the server runs; only
 * after the counter wraps past 4294967295 are IDs handed out again, and then
 * the ones still in use are skipped.
 *
 * The map is exact under concurrency: a backend clears its slot in its own
 * on_shmem_exit callback under the registry lock.  Whoever holds the lock
 * and sees a slot in use therefore knows that the process has not finished
 * exiting, so its PID cannot have been reused.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  registry.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netdb.h>

#include "access/twophase.h"
#include "common/ip.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "postmaster/bgworker_internals.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "kill_session.h"

KsShared   *ks_shared = NULL;

/* This backend's client session ID, 0 when it has none. */
uint32		ks_my_sid = 0;

/* One slot per PGPROC. */
static int
ks_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size
ks_shmem_size(void)
{
	return add_size(offsetof(KsShared, slots),
					mul_size(ks_nslots(), sizeof(KsSlot)));
}

/*
 * Create or attach to the registry.  Called with AddinShmemInitLock held.
 */
void
ks_shmem_init(void)
{
	bool		found;

	ks_shared = ShmemInitStruct("kill_session", ks_shmem_size(), &found);
	if (!found)
	{
		uint32		start;

		memset(ks_shared, 0, ks_shmem_size());
		ks_shared->lock = &(GetNamedLWLockTranche("kill_session"))->lock;
		ks_shared->nslots = ks_nslots();

		/* A random start in 1..4294967295 for each server life. */
		if (!pg_strong_random(&start, sizeof(start)))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random starting session ID")));
		ks_shared->next_sid = (start % PG_UINT32_MAX) + 1;
		ks_shared->wrapped = false;
	}
}

/* Slot index holding sid, or -1.  Caller holds the registry lock. */
int
ks_find_slot_locked(uint32 sid)
{
	int			i;

	for (i = 0; i < ks_shared->nslots; i++)
	{
		if (ks_shared->slots[i].pid != 0 && ks_shared->slots[i].sid == sid)
			return i;
	}
	return -1;
}

/* Hand out the next ID.  Caller holds the registry lock exclusively. */
static uint32
ks_next_sid_locked(void)
{
	for (;;)
	{
		uint32		sid = ks_shared->next_sid;

		if (sid == PG_UINT32_MAX)
		{
			ks_shared->next_sid = 1;
			ks_shared->wrapped = true;
		}
		else
			ks_shared->next_sid = sid + 1;

		/* Before the first wrap every ID is fresh; after it, skip live ones. */
		if (sid != 0 && (!ks_shared->wrapped || ks_find_slot_locked(sid) < 0))
			return sid;
	}
}

KsSlot *
ks_my_slot(void)
{
	if (ks_shared == NULL || ks_my_sid == 0 || MyProc == NULL)
		return NULL;
	return &ks_shared->slots[KS_MY_PROCNO];
}

/* on_shmem_exit callback: free this backend's slot. */
static void
ks_unregister_session(int code, Datum arg)
{
	KsSlot	   *slot = &ks_shared->slots[DatumGetInt32(arg)];

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
		memset(slot, 0, sizeof(KsSlot));
	LWLockRelease(ks_shared->lock);
	ks_my_sid = 0;
}

static void
ks_format_host(Port *port, char *host)
{
	char		addr[NI_MAXHOST];
	char		portno[NI_MAXSERV];

	if (port == NULL || port->raddr.addr.ss_family == AF_UNIX)
	{
		strlcpy(host, "localhost", KS_HOST_LEN);
		return;
	}
	if (pg_getnameinfo_all(&port->raddr.addr, port->raddr.salen,
						   addr, sizeof(addr), portno, sizeof(portno),
						   NI_NUMERICHOST | NI_NUMERICSERV) != 0)
	{
		host[0] = '\0';
		return;
	}
	if (port->raddr.addr.ss_family == AF_INET6)
		snprintf(host, KS_HOST_LEN, "[%s]:%s", addr, portno);
	else
		snprintf(host, KS_HOST_LEN, "%s:%s", addr, portno);
}

/*
 * Give this backend its client session ID.  Called once it has
 * authenticated; only client backends get here (walsenders are skipped by
 * the caller).
 */
void
ks_register_session(Port *port)
{
	int			procno = KS_MY_PROCNO;
	KsSlot	   *slot;
	char		host[KS_HOST_LEN];

	if (procno < 0 || procno >= ks_shared->nslots)
		elog(ERROR, "kill_session: PGPROC number %d out of range", procno);
	slot = &ks_shared->slots[procno];
	ks_format_host(port, host);

	/* Registered before the slot is filled, so that no exit can leak it. */
	on_shmem_exit(ks_unregister_session, Int32GetDatum(procno));

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	memset(slot, 0, sizeof(KsSlot));
	slot->sid = ks_next_sid_locked();
	slot->connect_time = GetCurrentTimestamp();
	namestrcpy(&slot->user_name, port->user_name ? port->user_name : "");
	namestrcpy(&slot->db_name, port->database_name ? port->database_name : "");
	memcpy(slot->host, host, KS_HOST_LEN);
	slot->pid = MyProcPid;
	ks_my_sid = slot->sid;
	LWLockRelease(ks_shared->lock);
}

/*
 * kill_session_set_next_id(bigint): a testing aid for the wrap of the ID
 * counter, not part of the extension's SQL interface.  A test declares it
 * itself (CREATE FUNCTION ... AS 'kill_session', 'kill_session_set_next_id'
 * LANGUAGE C), which already takes a superuser; the function checks that
 * too.  Setting the counter marks it wrapped, so from then on IDs still in
 * use are skipped and none is ever handed out twice at once.
 */
PG_FUNCTION_INFO_V1(kill_session_set_next_id);

Datum
kill_session_set_next_id(PG_FUNCTION_ARGS)
{
	int64		next = PG_GETARG_INT64(0);

	ks_check_loaded();
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to set the next session ID")));
	if (next < 1 || next > PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("session ID %lld is out of range", (long long) next)));

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	ks_shared->next_sid = (uint32) next;
	ks_shared->wrapped = true;
	LWLockRelease(ks_shared->lock);

	PG_RETURN_VOID();
}
