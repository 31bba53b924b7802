# SHOW PROCESSLIST through psycopg 3 with prepare=True, which prepares it at
# the protocol level, across what can remove or move the statement behind
# it.  (DISCARD ALL also removes psycopg's own statements, which psycopg
# 3.1 does not notice: that is tested at the protocol level.)  Prints "ok" or what went wrong for each step; used by
# t/008_show_processlist.pl.
import sys

import psycopg

conninfo = sys.argv[1]
conn = psycopg.connect(conninfo, autocommit=True)
other = psycopg.connect(conninfo, autocommit=True)


def show():
    try:
        cur = conn.execute("SHOW PROCESSLIST", prepare=True)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    except psycopg.Error as e:
        return "%s:%s" % (e.sqlstate, e)
    if names != ["ID", "USER", "HOST", "DB", "COMMAND", "TIME", "STATE", "INFO"]:
        return "columns:%s" % names
    return "ok" if len(rows) >= 2 else "rows:%d" % len(rows)


steps = [show()]
conn.execute("DEALLOCATE kill_session_show_processlist")
steps.append(show())
other.execute("CREATE SCHEMA IF NOT EXISTS ks_py")
other.execute("ALTER EXTENSION kill_session SET SCHEMA ks_py")
steps.append(show())
other.execute("ALTER EXTENSION kill_session SET SCHEMA public")
steps.append(show())
print(" ".join(steps))
