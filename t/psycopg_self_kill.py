# What psycopg 3 shows for a session that kills itself: the call raises the
# FATAL, with the DETAIL in the exception's text.  Used by t/007_self_kill.pl.
import sys

import psycopg

conn = psycopg.connect(sys.argv[1], autocommit=True)
sid = conn.execute("SELECT id FROM processlist WHERE pid = pg_backend_pid()").fetchone()[0]
try:
    conn.execute("SELECT kill_session(%s)", (str(sid),)).fetchall()
    print("no error")
except psycopg.OperationalError as e:
    print("OperationalError: " + " / ".join(line.strip() for line in str(e).splitlines()[:2]))
print("closed" if conn.closed else "open")
