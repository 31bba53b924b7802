/*-------------------------------------------------------------------------
 *
 * node_drive.c
 *		The calls to other nodes, driven all at once: one wait loop for
 *		every connection, and the calls' entry points.
 *
 * Many nodes are called at once: ks_nodes_send() starts every call and
 * returns once each is sent or has failed, ks_nodes_receive() waits for
 * every answer, ks_nodes_close() keeps or closes the connections however
 * the caller ends.  One wait serves every socket, the latch and the
 * postmaster's death; a call past its deadline fails.  A node's notices
 * are raised after each step, once libpq has returned.
 *
 * This file owns the waiting and the order of a call's steps.  It must not
 * take a step itself (node_call.c), nor read the directory or know what a
 * call is for (forward.c).
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_drive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "kill_session.h"
#include "node_answer.h"
#include "node_call.h"
#include "node_option.h"

/*
 * The query in flight is over (PQgetResult gave NULL): move on to what
 * comes next.
 */
static void
ks_call_query_over(KsNodeCall *call)
{
	switch (call->state)
	{
		case KS_CALL_CHECKING:
			call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 ks_answer_timeout(call));
			if (call->pipelined)
				call->state = KS_CALL_GUARDING;
			else
				ks_call_send(call, call->sql, call->nparams, call->params,
							 KS_CALL_RUNNING);
			break;
		case KS_CALL_GUARDING:
			call->state = KS_CALL_RUNNING;
			break;
		case KS_CALL_RUNNING:
			call->state = call->pipelined ? KS_CALL_SYNCING : KS_CALL_DONE;
			break;
		default:
			break;
	}
}

/* Take what the node has sent, as far as it goes without waiting. */
static void
ks_call_read(KsNodeCall *call)
{
	if (!PQconsumeInput(call->conn))
	{
		ks_call_lost(call, pchomp(PQerrorMessage(call->conn)));
		return;
	}
	while (call->state != KS_CALL_DONE && !PQisBusy(call->conn))
	{
		PGresult   *res = PQgetResult(call->conn);

		if (res == NULL)
		{
			ks_call_query_over(call);
			if (!call->pipelined)
				return;
			continue;
		}
		switch (PQresultStatus(res))
		{
			case PGRES_TUPLES_OK:
			case PGRES_COMMAND_OK:
				if (call->state == KS_CALL_CHECKING)
					ks_call_checked(call, res);
				else if (call->state == KS_CALL_RUNNING && call->result == NULL)
				{
					ks_call_answered(call, res);
					res = NULL;
				}
				break;
			case PGRES_PIPELINE_SYNC:
				if (call->state == KS_CALL_SYNCING && PQexitPipelineMode(call->conn))
					call->state = KS_CALL_DONE;
				else
					ks_call_fail(call, ERRCODE_PROTOCOL_VIOLATION,
								 psprintf("node %d ended the call out of turn", call->node),
								 NULL, NULL);
				break;
			default:
				ks_call_fail_result(call, res);
				break;
		}
		PQclear(res);
	}
}

/* Move the call on, as its socket allows; *events is what it waits for. */
static void
ks_call_step(KsNodeCall *call, uint32 *events)
{
	*events = 0;
	if (call->state == KS_CALL_KEPT)
		ks_call_connected(call);
	if (call->state == KS_CALL_RESOLVING)
	{
		char	   *host;
		char	   *hostaddr;
		char	   *port;
		char	   *error;

		switch (ks_resolve_read(&call->resolver, ks_call_option(call, "host"),
								ks_call_option(call, "port"),
								&host, &hostaddr, &port, &error))
		{
			case KS_RESOLVE_MORE:
				*events = WL_SOCKET_READABLE;
				return;
			case KS_RESOLVE_FAILED:
				ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
							 psprintf("could not connect to node %d", call->node),
							 error, NULL);
				return;
			case KS_RESOLVE_DONE:
				/* Every address, each with its name and port. */
				ks_call_set_option(call, "host", host);
				if (port != NULL)
					ks_call_set_option(call, "port", port);
				ks_call_add_option(call, "hostaddr", hostaddr);
				call->state = KS_CALL_NEW;
				break;
		}
	}
	if (call->state == KS_CALL_NEW)
	{
		ks_call_connect(call);
		if (call->state == KS_CALL_DONE)
			return;
		*events = WL_SOCKET_WRITEABLE;
		return;
	}
	if (call->state == KS_CALL_CONNECTING)
	{
		call->poll = PQconnectPoll(call->conn);
		if (call->poll == PGRES_POLLING_FAILED)
		{
			ks_call_connect_failed(call);
			return;
		}
		if (call->poll == PGRES_POLLING_OK)
			ks_call_connected(call);
		else
		{
			*events = call->poll == PGRES_POLLING_READING ?
				WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
			return;
		}
	}
	if (call->state == KS_CALL_DONE)
		return;
	if (call->flushing)
	{
		int			r = PQflush(call->conn);

		if (r < 0)
		{
			ks_call_lost(call, pchomp(PQerrorMessage(call->conn)));
			return;
		}
		call->flushing = (r == 1);
	}
	ks_call_read(call);
	if (call->state == KS_CALL_DONE)
		return;
	*events = WL_SOCKET_READABLE | (call->flushing ? WL_SOCKET_WRITEABLE : 0);
}

/* Whether the caller stops waiting for this call. */
static bool
ks_call_settled(const KsNodeCall *call, bool until_sent)
{
	if (call->state == KS_CALL_DONE)
		return true;
	return until_sent && call->sent && !call->flushing;
}

/*
 * Drive every call until each is settled: sent (until_sent) or done.  One
 * wait serves every socket, the latch (for interrupts) and the postmaster's
 * death; a call past its deadline fails.  A node's notices are raised after
 * each step, once libpq has returned.
 *
 * The wait's set is made anew for each wait, as a call's socket may change
 * between two (the resolver's pipe, then the connection's, libpq trying the
 * next address, a kept connection replaced) and epoll would not see a new
 * socket that got the number of a closed one.  Its epoll descriptor is
 * freed after the wait, and on an error or cancel anywhere in the loop.
 */
static void
ks_drive(KsNodeCall *calls, int n, bool until_sent)
{
	uint32	   *events = palloc0(sizeof(uint32) * Max(n, 1));
	bool	   *ready = palloc(sizeof(bool) * Max(n, 1));
	WaitEventSet *volatile set = NULL;
	int			i;

	/* Every call first moves on as far as it can without waiting. */
	for (i = 0; i < n; i++)
		ready[i] = true;
	PG_TRY();
	{
		for (;;)
		{
			TimestampTz now;
			TimestampTz next_deadline = 0;
			WaitEvent	occurred[8];
			int			nwaiting = 0;
			int			nevents;
			long		timeout;

			CHECK_FOR_INTERRUPTS();
			now = GetCurrentTimestamp();
			for (i = 0; i < n; i++)
			{
				KsNodeCall *call = &calls[i];

				if (call->state == KS_CALL_DONE)
					continue;
				if (now >= call->deadline && call->sent && call->action != NULL)
				{
					ks_call_fail(call, ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN,
								 psprintf("the outcome on node %d is unknown", call->node),
								 psprintf("Node %d did not answer the call within kill_session.node_timeout plus kill_session.wait_timeout (" INT64_FORMAT " ms).",
										  call->node, ks_answer_timeout(call)),
								 psprintf("cluster_processlist shows whether the session is still there; node %d's log says what was done.",
										  call->node));
					continue;
				}
				if (now >= call->deadline && call->sent)
				{
					ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								 psprintf("node %d did not answer in time", call->node),
								 psprintf("It did not answer within kill_session.node_timeout plus kill_session.wait_timeout (" INT64_FORMAT " ms).",
										  ks_answer_timeout(call)),
								 NULL);
					continue;
				}
				if (now >= call->deadline)
				{
					ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								 psprintf("could not reach node %d", call->node),
								 psprintf("It did not connect and say who it is within kill_session.node_timeout (%d ms).",
										  ks_node_timeout_ms()),
								 NULL);
					continue;
				}
				if (ready[i])
				{
					ks_call_step(call, &events[i]);
					ready[i] = false;
					ks_call_raise_notices(call);
				}
				if (ks_call_settled(call, until_sent))
					continue;
				nwaiting++;
				if (next_deadline == 0 || call->deadline < next_deadline)
					next_deadline = call->deadline;
			}
			if (nwaiting == 0)
				break;

			set = ks_create_wait_event_set(n + 2);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			for (i = 0; i < n; i++)
			{
				if (calls[i].state != KS_CALL_DONE && events[i] != 0)
					AddWaitEventToSet(set, events[i],
									  calls[i].state == KS_CALL_RESOLVING ?
									  calls[i].resolver.fd : PQsocket(calls[i].conn),
									  NULL, &ready[i]);
			}
			/* A wait takes at most INT_MAX ms; a later deadline takes more. */
			timeout = Min(Max(TimestampDifferenceMilliseconds(now, next_deadline), 1),
						  INT_MAX);
			nevents = WaitEventSetWait(set, timeout, occurred, lengthof(occurred),
									   PG_WAIT_EXTENSION);
			FreeWaitEventSet(set);
			set = NULL;
			for (i = 0; i < nevents; i++)
			{
				if (occurred[i].events & WL_LATCH_SET)
					ResetLatch(MyLatch);
				else if (occurred[i].user_data != NULL)
					*(bool *) occurred[i].user_data = true;
			}
		}
	}
	PG_FINALLY();
	{
		if (set != NULL)
			FreeWaitEventSet(set);
	}
	PG_END_TRY();
	/* A call that failed on its deadline may have had notices before. */
	for (i = 0; i < n; i++)
		ks_call_raise_notices(&calls[i]);
	pfree(events);
	pfree(ready);
}

/*
 * Connect to each call's node, check it and send it the call's SQL, all at
 * once; return when every call is sent or has failed.  Its answer comes
 * with ks_nodes_receive(); the connections are closed by ks_nodes_close(),
 * which the caller runs however it ends.
 */
void
ks_nodes_send(KsNodeCall *calls, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		calls[i].context = CurrentMemoryContext;
		ks_call_start(&calls[i]);
	}
	ks_drive(calls, n, true);
}

/* Wait for every call's answer, or its failure. */
void
ks_nodes_receive(KsNodeCall *calls, int n)
{
	ks_drive(calls, n, false);
}

void
ks_nodes_close(KsNodeCall *calls, int n)
{
	int			i;

	/* A connection is kept only after an answer in full. */
	for (i = 0; i < n; i++)
	{
		ks_resolve_stop(&calls[i].resolver);
		ks_connection_give_back(calls[i].serverid, calls[i].userid,
								calls[i].umid, calls[i].origin, calls[i].conn,
								calls[i].state == KS_CALL_DONE && !calls[i].failed);
		calls[i].conn = NULL;
	}
}
