# Mixed stress: for 60 s (or KS_STRESS_SECONDS, if longer) killers mix every 1.1
# statement -- kill_session, kill_sessions over random batches (repeated
# and missing IDs included), disconnect_session(..., post_transaction =>
# true) and cancel_sql -- against sessions that write in transactions,
# procedures that commit in a loop, and idle sessions, each replaced by a
# new one as it ends.  Afterwards:
#   - every transaction a client saw committed is in the table, and none
#     that it saw rolled back (cancelled) is; a procedure's rows are the
#     run of transactions it committed, with no gap;
#   - every session marked to disconnect has ended;
#   - no process list row points at a dead process;
#   - every session's client saw exactly one end, with the DETAIL of what
#     ended it, and every cancel the DETAIL of who cancelled;
#   - every failed call failed only because its session had gone;
#   - no killer leaked a descriptor, and the postmaster never restarted.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use IO::Select;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $seconds = ($ENV{KS_STRESS_SECONDS} // 0) > 60 ? $ENV{KS_STRESS_SECONDS} : 60;
my $n_writers = 8;
my $n_callers = 4;
my $n_idle = 4;
my $n_killers = 3;

my $node = ks_node('main', qq{
max_connections = 80
kill_session.wait_timeout = 5000
});
$node->safe_psql('postgres', q{
	CREATE TABLE t (w int, s int);
	GRANT ALL ON t TO PUBLIC;
	CREATE ROLE app LOGIN;
	CREATE ROLE dba LOGIN;
	GRANT ALTER SYSTEM TO dba;
	CREATE PROCEDURE batch(w int, n int) LANGUAGE plpgsql AS $$
	BEGIN
		FOR i IN 1 .. n LOOP
			INSERT INTO t VALUES (w, i);
			COMMIT;
			PERFORM pg_sleep(0.01);
		END LOOP;
	END $$;
	GRANT EXECUTE ON PROCEDURE batch(int, int) TO PUBLIC;
});
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
local $SIG{PIPE} = 'IGNORE';

# -- Targets -----------------------------------------------------------------

my $next_w = 0;
my (%committed, %rolled_back, %calls, %proc_done, @ended, %bad);
my %targets;    # session ID => target

sub new_target
{
	my ($kind) = @_;
	my $c = KsWire->connect($node, user => 'app');
	my $t = { kind => $kind, c => $c, id => $c->session_id, w => ++$next_w,
		seq => 0, busy => 0, msgs => [] };
	$targets{ $t->{id} } = $t;
	return $t;
}

# Send a target its next piece of work: a writer a transaction of two rows
# in one query string, a caller a procedure that commits 20 times.
sub feed
{
	my ($t) = @_;
	return if $t->{busy} || $t->{kind} eq 'idle';
	my $sql;
	if ($t->{kind} eq 'writer')
	{
		$t->{seq}++;
		$sql = "INSERT INTO t VALUES ($t->{w}, $t->{seq}); "
		  . "INSERT INTO t VALUES ($t->{w}, $t->{seq})";
	}
	else
	{
		# Each call its own rows.
		$t->{w} = ++$next_w;
		$calls{ $t->{w} } = 1;
		$sql = "CALL batch($t->{w}, 20)";
	}
	$t->{busy} = 1 if eval { $t->{c}->send_query($sql); 1 };
}

# What one message means for its target.
sub on_message
{
	my ($t, $m) = @_;
	my $type = $m->{type};
	if ($type eq 'E' && $m->{fields}{V} eq 'FATAL')
	{
		push @{ $t->{ends} }, $m->{fields};
	}
	elsif ($type eq 'E')
	{
		$t->{error} = $m->{fields};
	}
	elsif ($type eq 'Z')
	{
		my $e = delete $t->{error};
		if ($t->{kind} eq 'writer')
		{
			if (!$e) { $committed{"$t->{w}:$t->{seq}"} = 1; }
			elsif ($e->{C} eq '57014') { $rolled_back{"$t->{w}:$t->{seq}"} = 1; }
		}
		elsif (!$e) { $proc_done{ $t->{w} } = 1; }
		if ($e && $e->{C} eq '57014')
		{
			$bad{"cancel without its DETAIL: " . ($e->{D} // 'none')}++
			  unless ($e->{D} // '') =~
			  /^The statement of session $t->{id} was cancelled by role "dba" \(session \d+\)\.$/;
		}
		elsif ($e)
		{
			$bad{"$t->{kind} error $e->{C}: $e->{M}"}++;
		}
		$t->{busy} = 0;
	}
	elsif ($type eq 'EOF')
	{
		$t->{eof} = 1;
	}
}

# A target whose connection has closed: check its one end, and replace it.
sub retire
{
	my ($t) = @_;
	delete $targets{ $t->{id} };
	$t->{c}->close;
	delete $t->{c};
	push @ended, $t;
	my @ends = @{ $t->{ends} // [] };
	if (@ends != 1)
	{
		$bad{ scalar(@ends) . " FATALs for one session" }++;
		return;
	}
	my $d = $ends[0]{D} // '';
	$bad{"end with $ends[0]{C}, DETAIL '$d'"}++
	  unless $ends[0]{C} eq '57P01'
	  && $d =~ /^Session $t->{id} was (killed|disconnected) by role "dba" \(session \d+\)( after its transaction)?\.$/;
	$bad{"killed, yet 'after its transaction'"}++ if $d =~ /killed.*after its/;
}

my @live;
push @live, new_target('writer') for 1 .. $n_writers;
push @live, new_target('caller') for 1 .. $n_callers;
push @live, new_target('idle') for 1 .. $n_idle;

# -- Killers -------------------------------------------------------------------

my %outcomes;
my @killers = map {
	my $c = KsWire->connect($node, user => 'dba');
	{ c => $c, busy => 0, pid => $c->pid }
} 1 .. $n_killers;

# The descriptors a process has open, by what they point at, but for the
# relation files of the data directory: a backend keeps those open as it
# reads more catalogs.  A pidfd left open shows as anon_inode:[pidfd].
sub fds
{
	my ($pid) = @_;
	my $data = $node->data_dir;
	opendir(my $d, "/proc/$pid/fd") or return '';
	return join(' ', sort grep { !m{^\Q$data\E/} }
		  map { readlink("/proc/$pid/fd/$_") // '?' } grep { !/^\./ } readdir $d);
}

# The four calls, aimed at $id (a batch of ids for kill_sessions).
sub attacks
{
	my ($id, @batch) = @_;
	@batch = ($id) unless @batch;
	return (
		"SELECT 'kill', kill_session('$id')",
		"SELECT 'kill_sessions', bool_and(killed) FROM kill_sessions(ARRAY["
		  . join(',', @batch) . "]::bigint[])",
		"SELECT 'disconnect', disconnect_session('$id', post_transaction => true)",
		"SELECT 'cancel', cancel_sql('$id')");
}
# The first calls open the catalogs' files, which stay open.
for my $k (@killers)
{
	$k->{c}->query($_) for attacks(4294967295);
	$k->{fds} = fds($k->{pid});
}

sub random_id
{
	my @ids = keys %targets;
	return $ids[ int(rand(@ids)) ];
}

sub attack
{
	my ($k) = @_;
	my @batch = map { random_id() } 0 .. int(rand(4));
	push @batch, 4294967295 if rand() < 0.2;
	my $sql = (attacks(random_id(), @batch))[ int(rand(4)) ];
	$k->{c}->send_query($sql);
	$k->{busy} = 1;
}

sub on_killer_message
{
	my ($k, $m) = @_;
	if ($m->{type} eq 'D') { $k->{row} = KsWire::_row($m->{body}); }
	elsif ($m->{type} eq 'E') { $k->{error} = $m->{fields}; }
	elsif ($m->{type} eq 'Z')
	{
		my $e = delete $k->{error};
		my $row = delete $k->{row};
		if ($e) { $outcomes{"error $e->{C}"}++; $bad{"killer error $e->{C}: $e->{M}"}++ if $e->{C} ne '42704'; }
		else { $outcomes{"$row->[0] " . ($row->[1] // 'null')}++; }
		$k->{busy} = 0;
	}
	elsif ($m->{type} eq 'EOF') { $bad{'a killer was ended'}++; }
}

# -- The loop ----------------------------------------------------------------------

sub pump
{
	my ($timeout) = @_;
	my %by_sock;
	$by_sock{ $_->{c}{sock} } = [ 'target', $_ ] for values %targets;
	$by_sock{ $_->{c}{sock} } = [ 'killer', $_ ] for @killers;
	my $sel = IO::Select->new(map { $_->{c}{sock} } (values %targets), @killers);
	my %ready = map { $_ => 1 } $sel->can_read($timeout);
	for my $key (keys %by_sock)
	{
		my ($role, $x) = @{ $by_sock{$key} };
		next unless $ready{$key} || length($x->{c}{buf}) >= 5 || $x->{c}{eof};
		while (my $m = $x->{c}->read_message(0.001))
		{
			$role eq 'target' ? on_message($x, $m) : on_killer_message($x, $m);
			last if $m->{type} eq 'EOF';
		}
	}
	for my $t (values %targets)
	{
		next unless $t->{eof};
		retire($t);
		new_target($t->{kind});
	}
}

my $deadline = time() + $seconds;
while (time() < $deadline)
{
	feed($_) for values %targets;
	for my $k (@killers)
	{
		attack($k) if !$k->{busy} && rand() < 0.3;
	}
	pump(0.005);
}

# Quiesce: the killers finish their calls, the targets their work.
my $quiet_until = time() + 60;
while (time() < $quiet_until && grep { $_->{busy} } (@killers, values %targets))
{
	pump(0.01);
}
ok(!(grep { $_->{busy} } @killers), 'every killer call returned');

# Every session marked to disconnect has ended (those still busy end after
# their work); then no row of the process list points at a dead process.
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM processlist WHERE state = 'DISCONNECT PENDING'"),
	'every session marked to disconnect has ended');
pump(0.5);
ok($node->poll_query_until('postgres', ks_registry_query()),
	'the process list has exactly the live client backends');
my @dead = grep { !kill(0, $_) } split /\n/,
  $node->safe_psql('postgres', 'SELECT pid FROM processlist WHERE pid <> pg_backend_pid()');
is(scalar @dead, 0, 'no process list row points at a dead process');

# What the table holds.
my %in_table;
for (split /\n/, $node->safe_psql('postgres', "SELECT w || ':' || s, count(*) FROM t GROUP BY 1"))
{
	my ($key, $n) = split /\|/;
	$in_table{$key} = $n;
}
my @lost = grep { ($in_table{$_} // 0) != 2 } keys %committed;
is(scalar @lost, 0, scalar(keys %committed) . ' transactions seen committed, all in the table whole');
my @kept = grep { exists $in_table{$_} } keys %rolled_back;
is(scalar @kept, 0, scalar(keys %rolled_back) . ' transactions seen cancelled, none in the table');
my (@gaps, %steps);
for my $key (keys %in_table)
{
	my ($w, $s) = split /:/, $key;
	push @{ $steps{$w} }, $s if $calls{$w};
}
for my $w (keys %calls)
{
	my @s = sort { $a <=> $b } @{ $steps{$w} // [] };
	push @gaps, $w if @s && ($s[-1] != scalar(@s) || grep { $in_table{"$w:$_"} != 1 } @s);
	push @gaps, $w if $proc_done{$w} && scalar(@s) != 20;
}
is(scalar @gaps, 0, 'every procedure kept the run of transactions it committed, with no gap');

is_deeply(\%bad, {}, 'every session saw exactly one end with its DETAIL, every call failed only on a gone session');
cmp_ok(scalar(@ended), '>', 10, scalar(@ended) . ' sessions ended');
for my $what ('kill', 'kill_sessions', 'disconnect', 'cancel')
{
	cmp_ok(($outcomes{"$what t"} // 0), '>', 0, "$what succeeded at least once");
}
for my $k (@killers)
{
	is(fds($k->{pid}), $k->{fds}, "killer $k->{pid} left no descriptor open");

}
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$start_time, 'the server never restarted');
ok(!$node->log_contains(qr/PANIC|TRAP|terminated by signal/), 'no crash');

my %kinds;
$kinds{ $_->{kind} }++ for @ended;
note(sprintf("mixed stress %d s: %s; %d transactions committed, %d cancelled; sessions ended: %s",
	$seconds, join(', ', map { "$_ $outcomes{$_}" } sort keys %outcomes),
	scalar(keys %committed), scalar(keys %rolled_back),
	join(', ', map { "$_ $kinds{$_}" } sort keys %kinds)));
$node->stop;
done_testing();
