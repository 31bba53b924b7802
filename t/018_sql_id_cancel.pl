# cancel_sql('sid, serial#, sql_id'), Oracle's CANCEL SQL with a SQL_ID:
# it cancels a statement only if it has that query ID as the cancel
# arrives, whatever the race with the statements' ends and starts.
#
# In randomized rounds, the target runs two statements back to back, in one
# write (so that the second is read while the first may still be taken),
# each one of two kinds with different query IDs and a random length; a
# caller names one kind at a random moment.  The cancel must never hit a
# statement of the other kind; a call that says false must have cancelled
# nothing; a statement cancelled must belong to a call that said true.
# Every tenth round, the named kind runs for certain as the cancel comes
# (v$session shows it, and it runs for 30 s): it must be cancelled.
#
# Then what the caller is told when the target ends right after its cancel,
# when it does not run while the caller waits, and when another library
# has replaced the SIGINT handler that decides.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KsNode;
use KsWire;

my $node = ks_node('sqlid');
my $target = KsWire->connect($node);
my $sid = $target->session_id;
my $caller = KsWire->connect($node);

# Durations are always written with decimals: 0 and 0.5 are constants of
# different types, which give different query IDs.
my %sql = (A => 'SELECT pg_sleep(%.3f)', B => 'SELECT 1 AS b, pg_sleep(%.3f)');

# Each kind's SQL_ID, as v$session shows it once the statement has run.
my %qid;
for my $kind (qw(A B))
{
	$target->query(sprintf($sql{$kind}, 0));
	$qid{$kind} =
	  $caller->value("SELECT prev_sql_id FROM v\$session WHERE sid = $sid");
}
ok(defined $qid{A} && defined $qid{B} && $qid{A} ne $qid{B},
	"the two kinds have different SQL_IDs ($qid{A}, $qid{B})");

# Errors and notices of the call itself.
my $r = $caller->query("SELECT cancel_sql('$sid, 0, 12x')");
is($r->{error}{C}, '22023', 'a malformed SQL_ID is 22023');
like($r->{error}{M}, qr/invalid SQL_ID/, 'and says so');
$r = $caller->query("SELECT cancel_sql('$sid, 0, $qid{A}')");
is_deeply([ $r->{rows}[0][0], $r->{notices}[0]{M} ],
	[ 'f', "session $sid is not running a statement" ],
	'an idle session: false, with a NOTICE');
$target->send_query(sprintf($sql{B}, 30));
$node->poll_query_until('postgres',
	"SELECT event = 'PgSleep' FROM v\$session WHERE sid = $sid")
  or die 'the target did not start';
$r = $caller->query("SELECT cancel_sql('$sid, 0, $qid{A}')");
is_deeply([ $r->{rows}[0][0], $r->{notices}[0]{M}, $r->{notices}[0]{D} ],
	[ 'f', "session $sid is running another statement",
	  "Its SQL_ID is $qid{B}, not $qid{A}." ],
	'a session running another statement: false, with a NOTICE naming both');
$r = $caller->query("SELECT cancel_sql('$sid, 0, $qid{B}')");
is($r->{rows}[0][0], 't', 'the statement named: true');
$r = $target->read_result(30);
is($r->{error}{C}, '57014', 'and it is cancelled');
like($r->{error}{D}, qr/was cancelled by role "postgres" \(session \d+\)/,
	'with the DETAIL naming who cancelled it');

my $rounds = $ENV{KS_SQL_ID_ROUNDS} // 1000;
my %seen;
my @wrong;
for my $round (1 .. $rounds)
{
	my $named = rand() < 0.5 ? 'A' : 'B';
	my $sure = $round % 10 == 0;
	my (@kinds, @ms);
	if ($sure)
	{
		@kinds = ($named, $named);
		@ms = (30000, 0);
	}
	else
	{
		@kinds = map { rand() < 0.5 ? 'A' : 'B' } 1 .. 2;
		@ms = map { int(rand(4)) } 1 .. 2;
	}
	$target->send_msg('Q', sprintf($sql{ $kinds[$_] }, $ms[$_] / 1000) . "\0")
	  for 0 .. 1;
	$target->_push;
	if ($sure)
	{
		# until v$session shows it running
		for (my $i = 0;; $i++)
		{
			last
			  if $caller->value(
				"SELECT count(*) FROM v\$session WHERE sid = $sid AND event = 'PgSleep' AND sql_id = $qid{$named}"
			  );
			die 'the target did not start' if $i > 30000;
			usleep(1000);
		}
	}
	else
	{
		usleep(int(rand(($ms[0] + $ms[1]) * 1000 + 1500)));
	}
	my $call = $caller->query("SELECT cancel_sql('$sid, 0, $qid{$named}')");
	my @out = map {
		my $x = $target->read_result(30);
		$x->{error} ? $x->{error}{C} : 'ok'
	} 0 .. 1;
	my $said = $call->{error} ? "error $call->{error}{C}" : $call->{rows}[0][0];
	my @hit = grep { $out[$_] eq '57014' } 0 .. 1;
	my $what = "round $round: kinds @kinds, named $named, said $said, outcomes @out";

	push @wrong, "$what: another kind was cancelled"
	  if grep { $kinds[$_] ne $named } @hit;
	push @wrong, "$what: false, yet a statement was cancelled"
	  if $said eq 'f' && @hit;
	push @wrong, "$what: a statement was cancelled by no call that said so"
	  if $said ne 't' && @hit;
	push @wrong, "$what: not cancelled although it ran as the cancel came"
	  if $sure && !($said eq 't' && $out[0] eq '57014');
	push @wrong, "$what: an unexpected outcome"
	  if ($said ne 't' && $said ne 'f') || grep { $_ ne 'ok' && $_ ne '57014' } @out;
	my $notice = $call->{notices}[0]{M} // '';
	$notice =~ s/\d+/N/g;
	$seen{ $sure ? 'certain' : "said $said, cancelled " . scalar(@hit) . ($notice ? " ($notice)" : '') }++;
}
note "$_: $seen{$_}" for sort keys %seen;
is_deeply(\@wrong, [],
	"$rounds rounds: the cancel hit only the kind named, and always when it ran");
SKIP:
{
	# Under Valgrind the statements end long before the cancel is made.
	skip 'the races need the server at its own speed', 2 if $ENV{KS_VALGRIND};
	ok($seen{'said t, cancelled 1'}, 'some races were won by the cancel');
	ok((grep { /said f/ } keys %seen), 'and some found another statement, or none');
}

# The target is still there, and so is the caller.
is($target->value('SELECT 1'), '1', 'the target session goes on');
$target->close;

# A target that ends right after its cancel, as a script or a pooler that
# disconnects on an error does: its Terminate is sent with its statement,
# so the backend exits as soon as the statement has ended.  The call must
# say true for a statement it cancelled, and log it first; false only for
# a statement not cancelled, with a NOTICE that says why (the session gone
# is reported as gone); never the WARNING of a session that did not answer.
# Three rounds in four, the statement named certainly runs as the cancel
# comes (30 s); in the others, a short one races with the cancel.
my $csid = $caller->session_id;
my $log_start = -s $node->logfile;
my (%ended, @ended_wrong, @said_true);
for my $round (1 .. $rounds)
{
	my $sure = $round % 4 != 0;
	my $kind = rand() < 0.5 ? 'A' : 'B';
	my $t = KsWire->connect($node);
	my $tsid = $t->session_id;
	$t->send_msg('Q',
		sprintf($sql{$kind}, $sure ? 30 : int(rand(4)) / 1000) . "\0");
	$t->send_msg('X', '');
	$t->_push;
	if ($sure)
	{
		# pg_stat_activity, cheaper than v$session, which reads the locks
		my $pid = $t->pid;
		for (my $i = 0;; $i++)
		{
			last
			  if $caller->value(
				"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep' AND query_id = $qid{$kind}"
			  );
			die 'the target did not start' if $i > 30000;
			usleep(1000);
		}
	}
	else
	{
		usleep(int(rand(5000)));
	}
	my $call = $caller->query("SELECT cancel_sql('$tsid, 0, $qid{$kind}')");
	my $out = $t->read_result(30);
	$t->close;
	my $said = $call->{error} ? "error $call->{error}{C}" : $call->{rows}[0][0];
	my $cancelled = ($out->{error}{C} // '') eq '57014';
	my @warnings = grep { $_->{S} eq 'WARNING' } @{ $call->{notices} };
	my $notice = $call->{notices}[0]{M} // '';
	my $what = "round $round (session $tsid, " . ($sure ? 'certain' : 'race')
	  . "): said $said ($notice), " . ($cancelled ? 'cancelled' : 'not cancelled');

	push @ended_wrong, "$what: false, yet the statement was cancelled"
	  if $said eq 'f' && $cancelled;
	push @ended_wrong, "$what: cancelled by no call that said so"
	  if $said ne 't' && $cancelled;
	push @ended_wrong, "$what: not cancelled although it ran as the cancel came"
	  if $sure && !($said eq 't' && $cancelled);
	push @ended_wrong, "$what: a WARNING"
	  if @warnings;
	push @ended_wrong, "$what: an unexpected outcome"
	  unless $said eq 't'
	  || ($said eq 'f' && $notice =~ /^session \d+ (is not running a statement|is running another statement|ended before it took the cancel)/)
	  || $said eq 'error 42704';
	push @ended_wrong, "$what: the DETAIL does not name the caller"
	  if $cancelled
	  && ($out->{error}{D} // '') !~ /was cancelled by role "postgres" \(session $csid\)\./;
	push @said_true, $tsid if $said eq 't';
	(my $key = $said eq 'f' ? $notice : $said) =~ s/\d+/N/g;
	$ended{ ($sure ? 'certain: ' : 'race: ') . $key }++;
}
note "$_: $ended{$_}" for sort keys %ended;
is_deeply(\@ended_wrong, [],
	"$rounds rounds with a target that ends right after its cancel: true for every statement cancelled, false only with its reason"
);
my $log = substr(slurp_file($node->logfile), $log_start);
my @unlogged = grep {
	$log !~ /LOG:  session $_ \(pid \d+, role "postgres", database "postgres"\) was asked to cancel its statement with SQL_ID -?\d+ by session $csid \(pid \d+, role "postgres"\)\n/
} @said_true;
is_deeply(\@unlogged, [], 'every true has its LOG line, naming the caller');

# A target that does not run while the caller waits (stopped here): the
# caller stops waiting with a WARNING that the statement may still be
# cancelled, and the ask stays with its asker's name.  Another caller's ask
# meanwhile is not sent.  Once the target runs, it takes the cancel, and
# its DETAIL, in its LOG too, names the caller that asked.
my $stopped = KsWire->connect($node);
my $ssid = $stopped->session_id;
my $other = KsWire->connect($node);
my $osid = $other->session_id;
$stopped->send_query(sprintf($sql{A}, 30));
$node->poll_query_until('postgres',
	"SELECT event = 'PgSleep' AND sql_id = $qid{A} FROM v\$session WHERE sid = $ssid")
  or die 'the target did not start';
$log_start = -s $node->logfile;
$caller->query("SET kill_session.wait_timeout = '1s'");
$other->query("SET kill_session.wait_timeout = '1s'");
kill 'STOP', $stopped->pid;
my $r1 = eval { $caller->query("SELECT cancel_sql('$ssid, 0, $qid{A}')") };
my $r2 = eval { $other->query("SELECT cancel_sql('$ssid, 0, $qid{A}')") };
kill 'CONT', $stopped->pid;
is_deeply(
	[ $r1->{rows}[0][0], $r1->{notices}[0]{S}, $r1->{notices}[0]{M} ],
	[ 'f', 'WARNING',
	  "session $ssid did not answer the cancel within 1000 ms; its statement may still be cancelled" ],
	'a stopped target: false, with a WARNING that its statement may still be cancelled');
is_deeply(
	[ $r2->{rows}[0][0], $r2->{notices}[0]{S}, $r2->{notices}[0]{M} ],
	[ 'f', 'WARNING',
	  "session $ssid has not answered an earlier cancel by SQL_ID within 1000 ms" ],
	'and another caller meanwhile asks nothing');
$r = $stopped->read_result(30);
is_deeply(
	[ $r->{error}{C}, $r->{error}{D} ],
	[ '57014', "The statement of session $ssid was cancelled by role \"postgres\" (session $csid)." ],
	'once it runs, its statement is cancelled, and the DETAIL names the caller that asked');
# The target logs its ERROR before it sends it.
$log = substr(slurp_file($node->logfile), $log_start);
like($log,
	qr/LOG:  session $ssid \(pid \d+, role "postgres", database "postgres"\) was asked to cancel its statement with SQL_ID $qid{A} by session $csid \(pid \d+, role "postgres"\)\n.*ERROR:  canceling statement due to user request\n[^\n]*DETAIL:  The statement of session $ssid was cancelled by role "postgres" \(session $csid\)\./s,
	'the log has the ask, then the target\'s ERROR with the DETAIL naming the caller');
unlike($log, qr/session $osid \(pid \d+, role "postgres"\)\n/,
	'and no ask of the other caller');
is($stopped->value('SELECT 1'), '1', 'the target goes on');
$caller->query("RESET kill_session.wait_timeout");
$other->close;

# A session whose SIGINT handler another library replaced after
# kill_session's cannot decide which statement a cancel is for: the cancel
# by SQL_ID is refused before it is sent, with 55000, and its statement
# goes on.  The library is built here from t/sigint_replacer.c, with the
# server's own pg_config; it is not part of kill_session.
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
SKIP:
{
	my %pgc;
	for my $opt (qw(cc cflags cflags_sl includedir-server))
	{
		$pgc{$opt} = `$pg_config --$opt 2>/dev/null` // '';
		chomp $pgc{$opt};
	}
	my $lib = PostgreSQL::Test::Utils::tempdir() . '/sigint_replacer.so';
	my $built = $pgc{cc} ne '' && system(
		"$pgc{cc} $pgc{cflags} $pgc{cflags_sl} -I$pgc{'includedir-server'} -shared -o $lib $FindBin::RealBin/sigint_replacer.c >/dev/null 2>&1"
	) == 0;
	skip 'no C compiler for the test library', 5 unless $built;

	my $sid2 = $stopped->session_id;
	my $l = $stopped->query("LOAD '$lib'");
	is($l->{error}, undef, 'the library that replaces the SIGINT handler is loaded');
	$stopped->send_query(sprintf($sql{A}, 30));
	$node->poll_query_until('postgres',
		"SELECT event = 'PgSleep' AND sql_id = $qid{A} FROM v\$session WHERE sid = $sid2")
	  or die 'the target did not start';
	$r = $caller->query("SELECT cancel_sql('$sid2, 0, $qid{A}')");
	is_deeply(
		[ $r->{error}{C}, $r->{error}{M}, $r->{error}{D} ],
		[ '55000', "cannot cancel a statement of session $sid2 by its SQL_ID",
		  "Another library has replaced kill_session's SIGINT handler in that session, so the session cannot tell which statement a cancel is for." ],
		'a cancel by SQL_ID of a session whose handler was replaced: 55000, naming why');
	is($caller->value(
			"SELECT event FROM v\$session WHERE sid = $sid2"),
		'PgSleep', 'and its statement goes on');
	is($caller->value("SELECT cancel_sql('$sid2')"), 't',
		'a cancel without SQL_ID still cancels it');
	is($stopped->read_result(30)->{error}{C}, '57014', 'as PostgreSQL would');
}
$stopped->close;
$caller->close;

# SQL_ID joins pg_stat_statements, where it is installed (PostgreSQL's
# contrib; the assertion builds of the test matrix have only what the
# suites need).
# Many callers at once, for a statement that takes the cancel but cannot
# stop yet: a COPY FROM STDIN whose client sends nothing does not look at
# a cancel until its client writes.  Whichever caller's ask it took, a
# later ask taken since must not make that caller believe its statement
# stopped: no caller says true while the COPY still runs.
$node->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS copy_target (a int)');
for my $round (1 .. 3)
{
	my $t = KsWire->connect($node);
	my $tid = $t->session_id;
	my $tpid = $t->pid;
	$t->send_query('COPY copy_target FROM STDIN');
	$node->poll_query_until('postgres',
		"SELECT query_id IS NOT NULL FROM pg_stat_activity WHERE pid = $tpid AND state = 'active'")
	  or die 'the COPY did not start';
	my $qid = $node->safe_psql('postgres',
		"SELECT query_id FROM pg_stat_activity WHERE pid = $tpid");
	my @callers = map { KsWire->connect($node) } 1 .. 8;
	$_->send_query("SET kill_session.wait_timeout = '2s'; SELECT cancel_sql('$tid, 0, $qid')")
	  for @callers;
	my (@said, @warned);
	for my $c (@callers)
	{
		my $r = $c->read_result(60);
		push @said, $r->{rows}[0][0] // 'error';
		push @warned, grep { ($_->{M} // '') =~ /not cancelled yet|did not answer|has not answered/ } @{ $r->{notices} };
		$c->close;
	}
	my $running = $node->safe_psql('postgres',
		"SELECT state FROM pg_stat_activity WHERE pid = $tpid");
	is($running, 'active', "round $round: the COPY still runs after every call");
	is(scalar(grep { $_ eq 't' } @said), 0,
		"round $round: no caller says true while it runs (" . join(' ', @said) . ')');
	cmp_ok(scalar(@warned), '>=', 1, "round $round: and callers are told it has not stopped");
	$t->close;
}

my $pkglibdir = $node->config_data('--pkglibdir');
SKIP:
{
	skip 'pg_stat_statements is not installed with this server', 3
	  unless -f "$pkglibdir/pg_stat_statements.so";
	my $pgss = ks_node('pgss',
		"shared_preload_libraries = 'kill_session, pg_stat_statements'\n");
	$pgss->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
	my $t = KsWire->connect($pgss);
	my $tid = $t->session_id;
	$t->query('SELECT 2 AS c, pg_sleep(0.010)');
	$t->send_query('SELECT 2 AS c, pg_sleep(30.000)');
	$pgss->poll_query_until('postgres',
		"SELECT event = 'PgSleep' FROM v\$session WHERE sid = $tid")
	  or die 'the target did not start';
	is( $pgss->safe_psql(
			'postgres', qq{SELECT s.calls, s.query FROM v\$session v
			JOIN pg_stat_statements s ON s.queryid = v.sql_id AND s.userid = v.username::regrole
			WHERE v.sid = $tid}),
		'1|SELECT $1 AS c, pg_sleep($2)',
		'v$session joins pg_stat_statements on SQL_ID: the statement it runs, run once before');
	is( $pgss->safe_psql(
			'postgres', qq{SELECT cancel_sql(v.sid || ', 0, ' || s.queryid) FROM v\$session v
			JOIN pg_stat_statements s ON s.queryid = v.sql_id WHERE v.sid = $tid}),
		't', "and pg_stat_statements' queryid cancels it");
	is($t->read_result(30)->{error}{C}, '57014', 'the statement is cancelled');
	$t->close;
}

done_testing();
