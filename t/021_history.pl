# Every action on record: kill_session_history's row for each action with
# its session, actor, reason and outcome, checked against what the
# session's client saw; the reason in the DETAIL and the LOG line; the
# counters; who may read what; the ring's wrap under parallel killers; a
# clean restart and a crash; history_size = 0; a forwarded action on both
# nodes, read on a standby.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Under Valgrind, a smaller ring and fewer killers: every process there is
# tens of times slower.
my $size = $ENV{KS_VALGRIND} ? 20 : 50;
my $node = ks_node('main',
	"kill_session.history_size = $size\nmax_connections = 80\nrestart_after_crash = on\n");
$node->safe_psql('postgres', q{
	CREATE TABLE t (a int);
	INSERT INTO t VALUES (1);
	GRANT ALL ON t TO PUBLIC;
	CREATE ROLE app LOGIN;
	CREATE ROLE dba LOGIN;
	CREATE ROLE nopriv LOGIN;
	CREATE ROLE watcher LOGIN IN ROLE pg_read_all_stats;
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba;
});

my $dba = KsWire->connect($node, user => 'dba');
my $dba_id = $dba->session_id;
my $dba_pid = $dba->pid;

# The history row of the newest action on session $id, as a hash.
my @cols = qw(seq action session_id node pid username database
  application_name client state xact_start sql_id prev_sql_id statement
  blocking actor_session_id actor_pid actor_username actor_node
  origin_node origin_session_id reason outcome outcome_detail ended_at
  exit_ms);
sub row_of
{
	my ($n, $id, $user) = @_;
	my $sel = join(', ', map { "coalesce(${_}::text, '<null>')" } @cols);
	my $out = $n->safe_psql('postgres',
		"SELECT $sel FROM kill_session_history WHERE session_id = $id ORDER BY seq DESC LIMIT 1",
		extra_params => [ '-U', $user // 'postgres', '-F', "\x1f" ]);
	return undef if $out eq '';
	my %r;
	@r{@cols} = map { $_ eq '<null>' ? undef : $_ } split(/\x1f/, $out, -1);
	return \%r;
}

sub busy
{
	my ($w, $sql) = @_;
	my $pid = $w->pid;
	$w->send_query($sql // 'SELECT count(*) FROM generate_series(1, 1000000000)');
	$node->poll_query_until('postgres',
		"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $pid");
}

# -- A kill with a reason ----------------------------------------------

my ($v, $vid) = ks_victim($node);
my $vpid = $v->pid;
$v->query("SET application_name = 'nightly batch'");
busy($v);
my $r = $dba->query("SELECT kill_session('$vid', reason => 'batch overran its window')");
is_deeply($r->{rows}, [ ['t'] ], 'kill with a reason: true');
$r = $v->read_result(10);
is($r->{error}{C}, '57P01', 'its client got 57P01');
is($r->{error}{D},
	"Session $vid was killed by role \"dba\" (session $dba_id), for the reason \"batch overran its window\".",
	'with the reason in the DETAIL');
ok($node->log_contains(
		qr/session $vid \(pid $vpid, role "app", database "postgres"\) killed by session $dba_id \(pid $dba_pid, role "dba"\), for the reason "batch overran its window"/),
	'and in the LOG line');
my $h = row_of($node, $vid);
is_deeply([ @$h{qw(action pid username database application_name client state)} ],
	[ 'kill', $vpid, 'app', 'postgres', 'nightly batch', 'localhost', 'active' ],
	'history: the session as it was');
like($h->{statement}, qr/generate_series/, 'history: its statement');
ok(defined $h->{sql_id} && !defined $h->{prev_sql_id}, 'history: the running statement\'s SQL_ID');
is_deeply([ @$h{qw(actor_session_id actor_pid actor_username actor_node origin_node)} ],
	[ $dba_id, $dba_pid, 'dba', 0, undef ], 'history: the actor, no origin');
is_deeply([ @$h{qw(reason outcome blocking)} ],
	[ 'batch overran its window', 'exited', 0 ], 'history: reason, outcome exited, blocking nobody');
ok(defined $h->{ended_at} && $h->{exit_ms} >= 0, 'history: when it ended, and the exit time in ms');

# -- The gentle disconnect: marked, then ended after its transaction -----

($v, $vid) = ks_victim($node);
$v->query('BEGIN');
$v->query('INSERT INTO t VALUES (2)');
$r = $dba->query("SELECT disconnect_session('$vid', post_transaction => true, reason => 'maintenance at 02:00')");
is_deeply($r->{rows}, [ ['t'] ], 'disconnect post_transaction: true');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(action state outcome ended_at)} ],
	[ 'disconnect post_transaction', 'idle in transaction', 'marked', undef ],
	'history: marked, in a transaction, not ended yet');
ok(defined $h->{xact_start} && defined $h->{prev_sql_id} && !defined $h->{sql_id},
	'history: its transaction start and its last statement\'s SQL_ID');
like($h->{statement}, qr/INSERT INTO t VALUES \(2\)/, 'history: its last statement');
$r = $v->query('COMMIT');
is($r->{tag}, 'COMMIT', 'its COMMIT is reported committed');
$v->read_result(10);
$node->poll_query_until('postgres',
	"SELECT ended_at IS NOT NULL FROM kill_session_history WHERE session_id = $vid");
pass('history: the session wrote when it ended');

# -- disconnect without post_transaction is a kill, on record as a disconnect

($v, $vid) = ks_victim($node);
$r = $dba->query("SELECT disconnect_session('$vid', immediate => true)");
is_deeply($r->{rows}, [ ['t'] ], 'disconnect immediate: true');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(action state outcome reason)} ], [ 'disconnect', 'idle', 'exited', undef ],
	'history: disconnect, exited, no reason');

# -- Cancels -------------------------------------------------------------

($v, $vid) = ks_victim($node);
busy($v);
$r = $dba->query("SELECT cancel_sql('$vid', reason => 'runaway query')");
is_deeply($r->{rows}, [ ['t'] ], 'cancel with a reason: true');
$r = $v->read_result(10);
is($r->{error}{C}, '57014', 'its client got 57014');
is($r->{error}{D},
	"The statement of session $vid was cancelled by role \"dba\" (session $dba_id), for the reason \"runaway query\".",
	'with the reason in the DETAIL');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(action state outcome reason)} ], [ 'cancel', 'active', 'cancelled', 'runaway query' ],
	'history: cancel, cancelled');

$r = $dba->query("SELECT cancel_sql('$vid')");
is_deeply($r->{rows}, [ ['f'] ], 'cancel of an idle session: false');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(action state outcome outcome_detail)} ],
	[ 'cancel', 'idle', 'not running', 'it was not running a statement' ],
	'history: not running');

busy($v, 'SELECT pg_sleep(60)');
my $sql_id = $node->safe_psql("postgres", "SELECT sql_id FROM v\$session WHERE sid = $vid");
$r = $dba->query("SELECT cancel_sql('$vid, 0, $sql_id', reason => 'that one')");
is_deeply($r->{rows}, [ ['t'] ], 'cancel by SQL_ID: true');
is($v->read_result(10)->{error}{C}, '57014', 'its client got 57014');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(action sql_id outcome reason)} ], [ 'cancel sql_id', $sql_id, 'cancelled', 'that one' ],
	'history: cancel sql_id, cancelled, with the SQL_ID');
$r = $dba->query("SELECT cancel_sql('$vid, 0, 42')");
$h = row_of($node, $vid);
is_deeply([ @$h{qw(action outcome)} ], [ 'cancel sql_id', 'not running' ],
	'history: a SQL_ID it does not run is not running');

# -- kill_sessions: a row for each element -------------------------------

my ($v1, $id1) = ks_victim($node);
my ($v2, $id2) = ks_victim($node);
$r = $dba->query("SELECT id, killed FROM kill_sessions(ARRAY[$id1, $id2], 'two at once')");
is_deeply($r->{rows}, [ [ $id1, 't' ], [ $id2, 't' ] ], 'kill_sessions: both killed');
for my $id ($id1, $id2)
{
	$h = row_of($node, $id);
	is_deeply([ @$h{qw(action reason outcome)} ], [ 'kill', 'two at once', 'exited' ],
		"history: kill_sessions' element $id");
}

# -- A session that cannot end in time: marked, ended later ---------------

($v, $vid) = ks_victim($node);
kill 'STOP', $v->pid;
$dba->query('SET kill_session.wait_timeout = 300');
$r = $dba->query("SELECT kill_session('$vid')");
is_deeply($r->{rows}, [ ['f'] ], 'kill of a stopped session: false');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(outcome outcome_detail ended_at)} ],
	[ 'marked', 'it did not end within 300 ms', undef ], 'history: marked, not ended');
$r = $dba->query("SELECT kill_session('$vid', reason => 'again')");
is_deeply($r->{rows}, [ ['f'] ], 'killed again while stopped: false again');
kill 'CONT', $v->pid;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM kill_session_history WHERE session_id = $vid AND ended_at IS NOT NULL"),
	'history: both rows have when it ended, once it ended');
$dba->query('RESET kill_session.wait_timeout');

# -- The caller dies first: the attempt stays on record -------------------

($v, $vid) = ks_victim($node);
kill 'STOP', $v->pid;
my $doomed = KsWire->connect($node, user => 'dba');
$doomed->send_query("SELECT kill_session('$vid', reason => 'caller dies')");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM kill_session_history WHERE session_id = $vid");
$node->safe_psql('postgres', 'SELECT pg_terminate_backend(' . $doomed->pid . ')');
is($doomed->read_result(10)->{error}{C}, '57P01', 'the caller was terminated while it waited');
$h = row_of($node, $vid);
is_deeply([ @$h{qw(reason outcome)} ], [ 'caller dies', undef ],
	'history: the attempt is on record, without an outcome');
kill 'CONT', $v->pid;
$node->poll_query_until('postgres',
	"SELECT ended_at IS NOT NULL FROM kill_session_history WHERE session_id = $vid");
pass('history: and the session still wrote when it ended');

# -- Blocking: how many sessions it held up -------------------------------

($v, $vid) = ks_victim($node);
$v->query('BEGIN');
$v->query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
my @waiters;
for (1 .. 3)
{
	my $w = KsWire->connect($node, user => 'app');
	$w->send_query('SELECT count(*) FROM t');
	push @waiters, $w;
}
$node->poll_query_until('postgres',
	"SELECT count(*) = 3 FROM pg_locks WHERE NOT granted AND relation = 't'::regclass");
$r = $dba->query("SELECT kill_session('$vid')");
$h = row_of($node, $vid);
is_deeply([ @$h{qw(state blocking outcome)} ], [ 'idle in transaction', 3, 'exited' ],
	'history: it was blocking 3 sessions');
$_->read_result(10), $_->close for @waiters;

# kill_sessions reads the lock graph once for all its sessions: each row
# still has its own count.
my ($h1, $hid1) = ks_victim($node);
my ($h2, $hid2) = ks_victim($node);
$h1->query('SELECT pg_advisory_lock(101)');
$h2->query('SELECT pg_advisory_lock(102)');
@waiters = ();
for my $lock (101, 101, 102)
{
	my $w = KsWire->connect($node, user => 'app');
	$w->send_query("SELECT pg_advisory_lock($lock)");
	push @waiters, $w;
}
$node->poll_query_until('postgres',
	"SELECT count(*) = 3 FROM pg_locks WHERE NOT granted AND locktype = 'advisory'");
$r = $dba->query("SELECT id, killed FROM kill_sessions(ARRAY[$hid1, $hid2])");
is_deeply($r->{rows}, [ [ $hid1, 't' ], [ $hid2, 't' ] ], 'kill_sessions of two holders');
is_deeply([ row_of($node, $hid1)->{blocking}, row_of($node, $hid2)->{blocking} ], [ 2, 1 ],
	'history: each with the sessions it was blocking, from one read of the lock graph');
# Two of them queued for one session lock, in an order of their own: the
# one that got it holds it until it closes.
$_->close for @waiters;

# -- The reason's rules -------------------------------------------------

($v, $vid) = ks_victim($node);
for my $bad ([ "repeat('x', 256)", 'reason is too long' ],
	[ "'line one' || chr(10) || 'line two'", 'reason must not contain control characters' ],
	[ "'tab' || chr(9)", 'reason must not contain control characters' ],
	[ "''", 'reason must not be empty' ])
{
	$r = $dba->query("SELECT kill_session('$vid', reason => $bad->[0])");
	is_deeply([ $r->{error}{C}, $r->{error}{M} ], [ '22023', $bad->[1] ],
		"reason $bad->[0]: 22023");
}
is($v->value('SELECT 1'), '1', 'and the session was not touched');
$r = $dba->query("SELECT kill_session('$vid', reason => repeat('x', 255))");
is_deeply($r->{rows}, [ ['t'] ], 'a reason of 255 bytes is taken');
($v, $vid) = ks_victim($node);
busy($v);
$r = $dba->query(q{SELECT kill_session('} . $vid . q{', reason => 'a %s %n %d "quoted" \ slash')});
is($v->read_result(10)->{error}{D},
	"Session $vid was killed by role \"dba\" (session $dba_id), for the reason \"a %s %n %d \\\"quoted\\\" \\\\ slash\".",
	'a reason is never a format, and its quotes are escaped');

# -- Who may read what --------------------------------------------------

($v, $vid) = ks_victim($node);
$v->query("SELECT 'secret statement'");
$dba->query("SELECT kill_session('$vid')");
$h = row_of($node, $vid, 'nopriv');
is_deeply([ @$h{qw(username application_name client state xact_start sql_id prev_sql_id statement outcome actor_username)} ],
	[ 'app', 'kswire', undef, undef, undef, undef, undef, '<insufficient privilege>', 'exited', 'dba' ],
	'an ordinary role: what pg_stat_activity hides is hidden (client, state, transaction, SQL_IDs, statement); the rest shown');

$h = row_of($node, $vid, 'app');
is_deeply([ @$h{qw(client statement)} ], [ 'localhost', q{SELECT 'secret statement'} ],
	'the session\'s own role: all of it');
$h = row_of($node, $vid, 'watcher');
is($h->{statement}, q{SELECT 'secret statement'}, 'pg_read_all_stats: all of it');

# -- Cancelling one's own statement; Unicode's other controls -----------

$r = $dba->query("SELECT cancel_sql(id::text, reason => 'mine') FROM processlist WHERE pid = pg_backend_pid()");
is($r->{error}{C}, '57014', 'cancelling its own statement: 57014');
is($node->safe_psql('postgres', "SELECT outcome || ':' || outcome_detail FROM kill_session_history WHERE reason = 'mine'"),
	"cancelled:the caller's own statement", 'history: cancelled, not marked');

# In databases of their own encodings, whatever the cluster's default: a
# UTF-8 one for the victim, a LATIN1 one for the caller.
$node->safe_psql('postgres',
	"CREATE DATABASE utf8 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
$node->safe_psql('postgres',
	"CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
$node->safe_psql($_, 'CREATE EXTENSION kill_session') for 'utf8', 'latin1';
my $udba = KsWire->connect($node, user => 'dba', dbname => 'utf8');
$v = KsWire->connect($node, user => 'app', dbname => 'utf8');
$vid = $v->session_id;
for my $c ('0085', '2028', '2029', '009B')
{
	$r = $udba->query("SELECT kill_session('$vid', reason => U&'a\\$c' || 'b')");
	is($r->{error}{C}, '22023', "a reason with U+$c in a UTF-8 database: 22023");
}
$udba->close;

# -- A reason from a database of another encoding --------------------------

busy($v);
$node->safe_psql('latin1', "SELECT kill_session('$vid', reason => 'caf' || chr(233))");
is($v->read_result(10)->{error}{D},
	"Session $vid was killed by role \"postgres\" (session "
	  . $node->safe_psql('postgres', "SELECT actor_session_id FROM kill_session_history WHERE session_id = $vid")
	  . "), for the reason \"caf?\".",
	'a LATIN1 reason in a UTF-8 session\'s DETAIL: valid, its byte shown as ?');
is($node->safe_psql('utf8', "SELECT reason FROM kill_session_history WHERE session_id = $vid"),
	'caf?', 'and in the history read in a UTF-8 database');
is($node->safe_psql('latin1', "SELECT reason = 'caf' || chr(233) FROM kill_session_history WHERE session_id = $vid"),
	't', 'as written, in a database of its own encoding');

# -- The counters match the history ---------------------------------------

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT action, outcome, count(*) AS n FROM kill_session_history
		WHERE outcome IS NOT NULL GROUP BY 1, 2) h
	FULL JOIN (SELECT action, outcome, sum(count) AS n FROM kill_session_stats GROUP BY 1, 2) s
	USING (action, outcome)
	WHERE h.n IS DISTINCT FROM s.n}), '0', 'kill_session_stats counts what the history shows');
is($node->safe_psql('postgres',
		"SELECT count FROM kill_session_stats WHERE action = 'kill' AND outcome = 'exited' AND actor = 'session'"),
	$node->safe_psql('postgres',
		"SELECT count(*) FROM kill_session_history WHERE action = 'kill' AND outcome = 'exited'"),
	'by actor too');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT kill_session_stats_reset()',
	extra_params => [ '-U', 'dba' ]);
like($err, qr/permission denied for function kill_session_stats_reset/,
	'kill_session_stats_reset(): not for everyone');
$node->safe_psql('postgres', 'SELECT kill_session_stats_reset()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM kill_session_stats'), '0',
	'a superuser resets the counters');

# -- The ring wraps, with no torn row, under killers in parallel ----------

my $killers = $ENV{KS_VALGRIND} ? 2 : 4;
my $per = 10;
my $rounds = $ENV{KS_VALGRIND} ? 1 : 3;
my @k = map { KsWire->connect($node, user => 'dba') } 1 .. $killers;
my @kid = map { $_->session_id } @k;
my %pid_of;
my %killer_of;
for my $round (1 .. $rounds)
{
	my @victims;
	for my $i (0 .. $killers - 1)
	{
		my @ids;
		for (1 .. $per)
		{
			my ($w, $id) = ks_victim($node);
			$pid_of{$id} = $w->pid;
			$killer_of{$id} = $kid[$i];
			push @ids, $id;
			push @victims, $w;
		}
		$k[$i]->send_query(
			'SELECT bool_and(kill_session(id::text, reason => format(\'k%s v%s\', '
			  . $kid[$i] . ', id))) FROM unnest(ARRAY[' . join(',', @ids) . ']::bigint[]) id');
	}
	for my $i (0 .. $killers - 1)
	{
		is_deeply($k[$i]->read_result(60 * ks_slow())->{rows}, [ ['t'] ], "round $round: killer $i killed its $per");
	}
	$_->close for @victims;
}
my $rows = $node->safe_psql('postgres', q{
	SELECT seq, session_id, pid, actor_session_id, reason, outcome
	FROM kill_session_history ORDER BY seq});
my @rows = map { [ split /\|/ ] } split /\n/, $rows;
is(scalar @rows, $size, "the ring keeps its $size newest rows");
my $torn = 0;
for my $i (0 .. $#rows)
{
	my ($seq, $id, $pid, $actor, $reason, $outcome) = @{ $rows[$i] };
	$torn++ if $i > 0 && $seq != $rows[ $i - 1 ][0] + 1;
	$torn++ unless defined $pid_of{$id} && $pid == $pid_of{$id}
	  && $actor == $killer_of{$id} && $reason eq "k$actor v$id" && $outcome eq 'exited';
}
is($torn, 0, 'numbered in a row, each row whole: session, PID, actor and reason agree');
is($node->safe_psql('postgres',
		"SELECT count FROM kill_session_stats WHERE action = 'kill' AND outcome = 'exited'"),
	$killers * $per * $rounds, 'the counters count every kill, the overwritten rows too');

# -- A clean restart keeps it; a crash does not ----------------------------

my $before = $node->safe_psql('postgres', 'SELECT seq, session_id, reason FROM kill_session_history ORDER BY seq');
$_->close for @k;
$dba->close;
$node->restart;
is($node->safe_psql('postgres', 'SELECT seq, session_id, reason FROM kill_session_history ORDER BY seq'),
	$before, 'a clean restart keeps the history');
is($node->safe_psql('postgres', "SELECT sum(count) FROM kill_session_stats"),
	$killers * $per * $rounds, 'and the counters');
ok(!-e $node->data_dir . '/pg_stat/kill_session_history.stat', 'its file is removed once read');

$dba = KsWire->connect($node, user => 'dba');
($v, $vid) = ks_victim($node);
$dba->query("SELECT kill_session('$vid')");
is($node->safe_psql('postgres', 'SELECT max(seq) FROM kill_session_history'),
	(split /\|/, (split /\n/, $before)[-1])[0] + 1, 'numbering goes on after the restart');
$dba->close;

# A damaged file gives nothing, and the server starts.
$node->stop;
my $stat = $node->data_dir . '/pg_stat/kill_session_history.stat';
open(my $sf, '+<', $stat) or die "no $stat: $!";
binmode $sf;
seek($sf, 100, 0);
print $sf "damaged";
close $sf;
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM kill_session_history'), '0',
	'a damaged file: the history starts empty');
ok($node->log_contains(qr/ignoring file "pg_stat\/kill_session_history.stat": it is truncated or damaged/),
	'and the log says why');

$dba = KsWire->connect($node, user => 'dba');
($v, $vid) = ks_victim($node);
$dba->query("SELECT kill_session('$vid')");
$dba->close;
is($node->safe_psql('postgres', 'SELECT count(*) FROM kill_session_history'), '1', 'a row');
my $crash = KsWire->connect($node);
my $log_offset = -s $node->logfile;
kill 'KILL', $crash->pid;
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
is($node->safe_psql('postgres', 'SELECT count(*) FROM kill_session_history'), '0',
	'a crash loses the history (as pg_stat_statements loses its own)');
$dba = KsWire->connect($node, user => 'dba');
($v, $vid) = ks_victim($node);
$dba->query("SELECT kill_session('$vid')");
$dba->close;
is($node->safe_psql('postgres', 'SELECT count(*) FROM kill_session_history'), '1', 'a new row');
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM kill_session_history'), '0',
	'an immediate shutdown loses it too: the next start recovers');
ok(!$node->log_contains(qr/PANIC|TRAP/), 'no crash but the one made');
$node->stop;

# -- history_size = 0 ---------------------------------------------------

my $off = ks_node('off', "kill_session.history_size = 0\n");
$off->safe_psql('postgres', 'CREATE ROLE app LOGIN');
($v, $vid) = ks_victim($off);
is($off->safe_psql('postgres', "SELECT kill_session('$vid', reason => 'off')"), 't',
	'history off: the kill works');
is($off->safe_psql('postgres', 'SELECT count(*) FROM kill_session_history'), '0',
	'and no row is kept');
is($off->safe_psql('postgres', "SELECT count FROM kill_session_stats WHERE action = 'kill'"), '1',
	'the counters still count');
$off->stop;

# -- The drain deadline ---------------------------------------------------

$node = ks_node('drain', "kill_session.history_size = 100\n");
$node->safe_psql('postgres', q{
	CREATE TABLE t (a int);
	GRANT ALL ON t TO PUBLIC;
	CREATE ROLE app LOGIN;
	CREATE ROLE dba LOGIN;
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba;
});
# The checker, as pg_stat_activity shows it.
sub checker_pid
{
	my ($n) = @_;
	my $pid = $n->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kill_session checker'");
	return $pid eq '' ? undef : $pid;
}
my $deadline = time() + 30 * ks_slow();
usleep(50_000) until checker_pid($node) || time() > $deadline;
ok(checker_pid($node), 'the checker runs: pg_stat_activity shows it');

# A transaction still open at the deadline: killed then, though the caller
# has gone, its work rolled back.
$dba = KsWire->connect($node, user => 'dba');
$dba_id = $dba->session_id;
($v, $vid) = ks_victim($node);
$v->query('BEGIN');
$v->query('INSERT INTO t VALUES (1)');
my $t0 = time();
$r = $dba->query("SELECT disconnect_session('$vid', post_transaction => true, timeout => '1.5 s', reason => 'drain for the upgrade')");
is_deeply($r->{rows}, [ ['t'] ], 'drain: marked');
$dba->close;
$r = $v->read_result(30);
my $waited = time() - $t0;
is($r->{error}{C}, '57P01', 'at the deadline the session was killed, with the caller gone');
cmp_ok($waited, '>=', 1.4, 'not before the deadline');
cmp_ok($waited, '<', 1.5 + 2 * ks_slow(), 'and soon after it');
like($r->{error}{D},
	qr/^Session $vid was disconnected by role "dba" \(session $dba_id\), for the reason "drain for the upgrade": its transaction had not ended by the drain deadline, .*, and was rolled back\.$/,
	'its DETAIL says the drain deadline passed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'its transaction was rolled back');
is($node->safe_psql('postgres', "SELECT string_agg(action || ':' || coalesce(outcome, '-') || ':' || actor_session_id || ':' || coalesce(reason, '-'), ' ' ORDER BY seq) FROM kill_session_history WHERE session_id = $vid"),
	"disconnect post_transaction:marked:$dba_id:drain for the upgrade drain deadline:marked:$dba_id:drain for the upgrade",
	'history: the disconnect, then the kill at the deadline, with the same actor and reason');
is($node->safe_psql('postgres', "SELECT state || ':' || statement || ':' || (xact_start IS NOT NULL) || ':' || (ended_at IS NOT NULL) FROM kill_session_history WHERE session_id = $vid AND action = 'drain deadline'"),
	'idle in transaction:INSERT INTO t VALUES (1):true:true',
	'the checker\'s row has the session as it was at the deadline, and when it ended');
is($node->safe_psql('postgres', "SELECT count FROM kill_session_stats WHERE action = 'drain deadline' AND actor = 'automatic'"),
	'1', 'counted as automatic');
ok($node->log_contains(qr/session $vid \(pid \d+, role "app", database "postgres"\) killed at its drain deadline .*, as role "dba" \(session $dba_id\), for the reason "drain for the upgrade" asked/),
	'and its LOG line');

# A transaction that ends before the deadline: committed, not killed.
$dba = KsWire->connect($node, user => 'dba');
($v, $vid) = ks_victim($node);
$v->query('BEGIN');
$v->query('INSERT INTO t VALUES (2)');
$r = $dba->query("SELECT disconnect_session('$vid', post_transaction => true, timeout => '30 s')");
is_deeply($r->{rows}, [ ['t'] ], 'a long drain: marked');
$r = $v->query('COMMIT');
is($r->{tag}, 'COMMIT', 'its COMMIT is reported committed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', 'and is kept');
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM processlist WHERE id = $vid");
is($node->safe_psql('postgres', "SELECT count(*) FROM kill_session_history WHERE session_id = $vid AND action = 'drain deadline'"),
	'0', 'no kill at the deadline for a session that ended');

# The checker stopped by a signal is started again, and keeps the deadlines
# set before.
($v, $vid) = ks_victim($node);
$v->query('BEGIN');
$r = $dba->query("SELECT disconnect_session('$vid', post_transaction => true, timeout => '3 s')");
is_deeply($r->{rows}, [ ['t'] ], 'a drain of 3 s');
my $first_checker = checker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($first_checker)");
$deadline = time() + 30 * ks_slow();
usleep(50_000) until (checker_pid($node) // $first_checker) != $first_checker || time() > $deadline;
isnt(checker_pid($node) // $first_checker, $first_checker, 'the checker, terminated, runs again');
is($v->read_result(30)->{error}{C}, '57P01', 'and kills at the deadline set before');

# The argument's rules.
($v, $vid) = ks_victim($node);
for my $bad ([ "timeout => '1 s'", '22023', 'a drain deadline needs post_transaction' ],
	[ "post_transaction => true, timeout => '0'", '22023', 'drain deadline must be between 1 ms and 2147483 seconds' ],
	[ "post_transaction => true, timeout => '-1 s'", '22023', 'drain deadline must be between 1 ms and 2147483 seconds' ],
	[ "post_transaction => true, timeout => '1 year'", '22023', 'drain deadline must be between 1 ms and 2147483 seconds' ])
{
	$r = $dba->query("SELECT disconnect_session('$vid', $bad->[0])");
	is_deeply([ $r->{error}{C}, $r->{error}{M} ], [ $bad->[1], $bad->[2] ], "$bad->[0]: $bad->[1]");
}
$dba->close;
$node->stop;

# -- A forwarded action: on record on both nodes; read on a standby -------

my ($n1, $n2, $n3) = ks_cluster();
my $caller = KsWire->connect($n1, user => 'dba');
my $caller_id = $caller->session_id;
$n1->safe_psql('postgres', 'GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba');
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for ($n2, $n3);
($v, $vid) = ks_victim($n2);
busy_on($n2, $v);
$r = $caller->query("SELECT kill_session('$vid', reason => 'from node 1')");
is_deeply($r->{rows}, [ ['t'] ], 'a kill forwarded from node 1 to standby 2');
like($v->read_result(10)->{error}{D}, qr/on behalf of role "dba" \(session $caller_id, pid \d+\) of node 1, as node 1 reported, for the reason "from node 1"\.$/,
	'the DETAIL names the origin and the reason');
$h = row_of($n1, $vid);
is_deeply([ @$h{qw(action node pid actor_session_id reason outcome outcome_detail)} ],
	[ 'kill', 2, undef, $caller_id, 'from node 1', 'done', 'node 2 answered true' ],
	'node 1 has its row: sent to node 2, done');
$h = row_of($n2, $vid);
is_deeply([ @$h{qw(action node pid username origin_node origin_session_id reason outcome)} ],
	[ 'kill', 2, $v->pid, 'app', 1, $caller_id, 'from node 1', 'exited' ],
	'standby 2 has its own, read there: the session, the origin, the reason, exited');
is($n2->safe_psql('postgres',
		"SELECT count FROM kill_session_stats WHERE actor = 'forwarded'"), '1',
	'standby 2 counts it as forwarded');
ok($n2->log_contains(qr/killed by session \d+ \(pid \d+, role "dba"\) on behalf of role "dba" \(session $caller_id, pid \d+\) of node 1, as node 1 reported, for the reason "from node 1"/),
	'and its LOG line has the origin and the reason');

is($n3->safe_psql('postgres',
		"SELECT string_agg(format('%s:%s:%s:%s', inst_id, node, pid IS NOT NULL, outcome), ' ' ORDER BY inst_id)
		 FROM gkill_session_history WHERE session_id = $vid"),
	'1:2:f:done 2:2:t:exited',
	'gkill_session_history on standby 3: both nodes\' rows of the kill');
my ($gout, $gerr);
($gout, $gerr) = ks_run_as($n3, 'app',
	"SELECT inst_id, username, client, statement FROM gkill_session_history WHERE session_id = $vid AND inst_id = 2");
is($gout, '2|app|localhost|SELECT count(*) FROM generate_series(1, 1000000000)',
	'as the session\'s own role: all of its row');
($gout, $gerr) = ks_run_as($n3, 'dba',
	"SELECT inst_id, username, client, statement FROM gkill_session_history WHERE session_id = $vid AND inst_id = 2");
is($gout, '2|app||<insufficient privilege>', 'as another role: no client, no statement');

# A role who may create functions in the extension's schema puts shorter
# ones beside the real functions: a forwarded call names the whole
# signature, and still reaches the extension's own.
$n1->safe_psql('postgres', q{
	GRANT CREATE ON SCHEMA public TO app;
	SET ROLE app;
	CREATE FUNCTION public.kill_session(text, boolean) RETURNS boolean
		LANGUAGE sql AS 'SELECT false';
	CREATE FUNCTION public.kill_sessions(bigint[])
		RETURNS TABLE (id bigint, killed boolean)
		LANGUAGE sql AS 'SELECT unnest($1), false';
});
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for ($n2, $n3);
($v, $vid) = ks_victim($n2);
is_deeply($caller->query("SELECT kill_session('$vid')")->{rows}, [ ['t'] ],
	'a forwarded kill without a reason reaches the extension\'s function, not a shorter one');
is($v->read_result(10)->{error}{C}, '57P01', 'and kills');
($v, $vid) = ks_victim($n2);
is_deeply($caller->query("SELECT id, killed FROM kill_sessions(ARRAY[$vid], NULL)")->{rows}, [ [ $vid, 't' ] ],
	'so does kill_sessions');
is($v->read_result(10)->{error}{C}, '57P01', 'and kills');
$n1->safe_psql('postgres', q{
	DROP FUNCTION public.kill_session(text, boolean);
	DROP FUNCTION public.kill_sessions(bigint[]);
	REVOKE CREATE ON SCHEMA public FROM app;
});
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for ($n2, $n3);

# A forwarded kill its caller stops waiting for: unknown, not refused.
($v, $vid) = ks_victim($n2);
kill 'STOP', $v->pid;
$caller->query("SET statement_timeout = '1s'");
$r = $caller->query("SELECT kill_session('$vid', reason => 'cut short')");
is($r->{error}{C}, '57014', 'a forwarded kill cut by statement_timeout: 57014');
$caller->query('RESET statement_timeout');
$h = row_of($n1, $vid);
is_deeply([ @$h{qw(outcome reason)} ], [ 'unknown', 'cut short' ],
	'node 1 has it as unknown: node 2 may have acted');
kill 'CONT', $v->pid;

# A drain forwarded to the standby: its deadline kept there.
($v, $vid) = ks_victim($n2);
$v->query('BEGIN');
$v->query('SELECT 1');
$r = $caller->query("SELECT disconnect_session('$vid', post_transaction => true, timeout => '1 s', reason => 'drain from node 1')");
is_deeply($r->{rows}, [ ['t'] ], 'a drain forwarded from node 1 to standby 2');
$r = $v->read_result(30);
is($r->{error}{C}, '57P01', 'standby 2 killed its session at the deadline');
like($r->{error}{D}, qr/on behalf of role "dba" \(session $caller_id, pid \d+\) of node 1, as node 1 reported, for the reason "drain from node 1": its transaction had not ended by the drain deadline/,
	'with the origin, the reason and the deadline in its DETAIL');

sub busy_on
{
	my ($n, $w) = @_;
	my $pid = $w->pid;
	$w->send_query('SELECT count(*) FROM generate_series(1, 1000000000)');
	$n->poll_query_until('postgres',
		"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $pid");
}

$_->stop for ($n1, $n2, $n3);
done_testing();
