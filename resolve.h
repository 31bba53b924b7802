/*-------------------------------------------------------------------------
 *
 * resolve.h
 *		Host names resolved without blocking the caller: what the
 *		forwarding files (node_*.c) may ask of resolve.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  resolve.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_RESOLVE_H
#define KS_RESOLVE_H

#include "lib/stringinfo.h"

/* A resolution under way: a child process writing to a pipe. */
typedef struct KsResolver
{
	pid_t		pid;			/* the child, or 0 */
	int			fd;				/* the pipe's end to read, while pid is set */
	StringInfoData answer;		/* what the child wrote so far */
} KsResolver;

/* What ks_resolve_read() found. */
typedef enum KsResolveResult
{
	KS_RESOLVE_MORE,			/* not finished: wait for fd to be readable */
	KS_RESOLVE_DONE,			/* *host, *hostaddr and *port are set */
	KS_RESOLVE_FAILED			/* *error is set */
} KsResolveResult;

extern bool ks_resolve_needed(const char *hosts);
extern bool ks_resolve_start(KsResolver *r, const char *hosts);
extern KsResolveResult ks_resolve_read(KsResolver *r, const char *hosts,
									   const char *ports, char **host,
									   char **hostaddr, char **port,
									   char **error);
extern void ks_resolve_stop(KsResolver *r);

#endif							/* KS_RESOLVE_H */
