#!/usr/bin/env perl
# kill_session benchmarks: every figure a median with its spread, every
# comparison a ratio against a baseline measured in the same run.
#
#   perl bench/bench.pl         (run by bench/run.sh, as a non-root user)
#
# Starts its own throw-away servers under a temporary directory.  The
# cluster part holds 1,500 connections: run.sh raises the descriptor limit.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t";
use KsWire;
use KsTls;
use File::Temp qw(tempdir);
use POSIX qw(floor);
use Time::HiRes qw(time usleep);
use IPC::Open2;

# The server under test: PG_CONFIG's, or that of the pg_config in PATH.
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $bindir = `$pg_config --bindir`;
chomp $bindir;
my $quick = $ENV{KS_BENCH_QUICK} ? 1 : 0;
my $samples = $quick ? 9 : 31;
my $root = tempdir('kill_session_bench.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $next_port = 55432;

# ---- servers -----------------------------------------------------------

# Servers still running when the script ends, however it ends, are stopped.
my @servers;
END { $_->stop for @servers; }

package Server {
	sub new
	{
		my ($class, $name, $conf) = @_;
		my $self = bless {
			name => $name,
			dir => "$root/$name",
			port => $next_port++,
		}, $class;
		push @servers, $self;
		system("$bindir/initdb -D $self->{dir} -A trust -U postgres --no-sync >/dev/null") == 0
		  or die "initdb failed";
		open(my $fh, '>>', "$self->{dir}/postgresql.conf") or die;
		print $fh "port = $self->{port}\nlisten_addresses = ''\n"
		  . "unix_socket_directories = '$self->{dir}'\nmax_connections = 600\n"
		  . "shared_buffers = 256MB\nfsync = off\n$conf\n";
		close $fh;
		return $self;
	}
	sub start
	{
		my ($self) = @_;
		system("$bindir/pg_ctl -D $self->{dir} -l $self->{dir}/log -w start >/dev/null") == 0
		  or die "start failed";
	}
	sub stop
	{
		my ($self) = @_;
		return unless -f "$self->{dir}/postmaster.pid";
		system("$bindir/pg_ctl -D $self->{dir} -m fast -w stop >/dev/null");
	}
	sub host { return $_[0]->{dir}; }
	sub port { return $_[0]->{port}; }
	sub psql
	{
		my ($self, $sql) = @_;
		my $out = `$bindir/psql -X -Atq -h $self->{dir} -p $self->{port} -U postgres -d postgres -c "$sql"`;
		chomp $out;
		return $out;
	}
}

# ---- statistics --------------------------------------------------------

sub quantile
{
	my ($sorted, $q) = @_;
	my $pos = $q * (@$sorted - 1);
	my $lo = floor($pos);
	my $hi = $lo + 1 < @$sorted ? $lo + 1 : $lo;
	return $sorted->[$lo] + ($sorted->[$hi] - $sorted->[$lo]) * ($pos - $lo);
}

sub summary
{
	my @s = sort { $a <=> $b } @_;
	return {
		median => quantile(\@s, 0.5),
		p25 => quantile(\@s, 0.25),
		p75 => quantile(\@s, 0.75),
		n => scalar @s
	};
}

sub fmt_ms
{
	my ($s) = @_;
	return sprintf('%8.3f ms (IQR %.3f-%.3f, n=%d)',
		$s->{median} * 1000, $s->{p25} * 1000, $s->{p75} * 1000, $s->{n});
}

my @report;
sub line { my ($l) = @_; print "$l\n"; push @report, $l; }

# The last line names the machine and the server; with KS_BENCH_REPORT set,
# the report is also written to that file, for bench/run.sh --write-doc.
sub finish
{
	my $cpu = `grep -m1 'model name' /proc/cpuinfo`;
	$cpu =~ s/.*:\s*//;
	chomp $cpu;
	my $cores = `nproc`;
	chomp $cores;
	my $kernel = `uname -r`;
	chomp $kernel;
	my $pgv = `$bindir/postgres --version`;
	chomp $pgv;
	line("== machine: $cpu, $cores cores, Linux $kernel, $pgv");
	if ($ENV{KS_BENCH_REPORT})
	{
		open(my $fh, '>', $ENV{KS_BENCH_REPORT})
		  or die "could not write $ENV{KS_BENCH_REPORT}: $!";
		print $fh "$_\n" for @report;
		close($fh) or die "could not write $ENV{KS_BENCH_REPORT}: $!";
	}
}

# KS_BENCH_FAKE=1 starts no server and reports two made-up lines: it tests
# the way the report goes into doc/performance.md, not the extension.
if ($ENV{KS_BENCH_FAKE})
{
	line('== fake report (KS_BENCH_FAKE=1): no server was started');
	line('    kill_session / bare = 1.00x (target <= 1.2x)');
	finish();
	exit 0;
}

# KS_BENCH_ONLY=cluster runs only part 6, KS_BENCH_ONLY=vsession part 7,
# KS_BENCH_ONLY=record part 8 (record-kill: its kills alone),
# KS_BENCH_ONLY=blockers part 9.
my $only = $ENV{KS_BENCH_ONLY} // '';

# ---- 1. kill latency -----------------------------------------------------
if ($only eq '') {

my $main = Server->new('main', "shared_preload_libraries = 'kill_session'");
$main->start;
$main->psql('CREATE EXTENSION kill_session');

sub new_target
{
	my ($busy) = @_;
	my $t = KsWire->connect($main);
	my $id = $t->session_id;
	if ($busy)
	{
		# A plain CPU loop: no JIT compilation to wait through.
		$t->send_query('DO $$ BEGIN LOOP PERFORM 1; END LOOP; END $$');
		usleep(20_000);
	}
	return ($t, $id);
}

sub kill_latency
{
	my ($how, $busy, $killer) = @_;
	my ($t, $id) = new_target($busy);
	my $pid = $t->pid;
	my $t0 = time();
	if ($how eq 'kill_session')
	{
		my $r = $killer->query("SELECT kill_session('$id')");
		die "kill_session failed" unless ($r->{rows}[0][0] // '') eq 't';
	}
	elsif ($how eq 'bare')
	{
		# Poll as finely as the machine allows without taking a core from
		# the dying process.
		$killer->query("SELECT pg_terminate_backend($pid)");
		usleep(20) while kill(0, $pid);
	}
	else
	{
		$killer->query("SELECT pg_terminate_backend($pid, 5000)");
	}
	my $elapsed = time() - $t0;
	die "$how: target $pid still there" if kill(0, $pid);
	$t->close;
	return $elapsed;
}

line("== kill latency: call -> target process gone ($samples samples each, order rotated)");
my $killer = KsWire->connect($main);
for my $busy (0, 1)
{
	my %lat;
	my @methods = ('kill_session', 'bare', 'terminate5000');
	for my $i (1 .. $samples)
	{
		# Rotate the order: the call after a 100 ms pg_terminate_backend
		# wait meets a machine that has gone idle, and no method should
		# always be that one.
		for my $how (@methods[ map { ($i + $_) % 3 } 0 .. 2 ])
		{
			push @{ $lat{$how} }, kill_latency($how, $busy, $killer);
		}
	}
	my %s = map { $_ => summary(@{ $lat{$_} }) } keys %lat;
	my $what = $busy ? 'CPU-bound target' : 'idle target';
	line("  $what");
	line("    kill_session('id')                  " . fmt_ms($s{kill_session}));
	line("    bare: pg_terminate_backend + reap   " . fmt_ms($s{bare}));
	line("    pg_terminate_backend(pid, 5000)     " . fmt_ms($s{terminate5000}));
	line(sprintf("    kill_session / bare = %.2fx (target <= 1.2x); "
		  . "pg_terminate_backend(pid, 5000) / kill_session = %.1fx (target >= 20x)",
		$s{kill_session}{median} / $s{bare}{median},
		$s{terminate5000}{median} / $s{kill_session}{median}));
}

# ---- 2 and 4. listing, and scale ----------------------------------------

sub time_query
{
	my ($c, $sql) = @_;
	my $t0 = time();
	my $r = $c->query($sql);
	die "$sql: $r->{error}{M}" if $r->{error};
	return time() - $t0;
}

my @idle;
my %scale;
for my $n (50, 200, 500)
{
	push @idle, KsWire->connect($main) while @idle < $n - 1;
	my %lat;
	for (1 .. $samples)
	{
		for my $sql ('SHOW PROCESSLIST', 'SELECT * FROM processlist',
			'SELECT * FROM pg_stat_activity')
		{
			push @{ $lat{$sql} }, time_query($killer, $sql);
		}
	}
	my %k;
	for (1 .. $samples)
	{
		push @{ $k{kill} }, kill_latency('kill_session', 0, $killer);
	}
	$scale{$n} = {
		show => summary(@{ $lat{'SHOW PROCESSLIST'} }),
		view => summary(@{ $lat{'SELECT * FROM processlist'} }),
		psa => summary(@{ $lat{'SELECT * FROM pg_stat_activity'} }),
		kill => summary(@{ $k{kill} }),
	};
}
$_->close for @idle;

my $s500 = $scale{500};
line("== listing with 500 sessions ($samples samples each, alternated)");
line("    SHOW PROCESSLIST                    " . fmt_ms($s500->{show}));
line("    SELECT * FROM processlist           " . fmt_ms($s500->{view}));
line("    SELECT * FROM pg_stat_activity      " . fmt_ms($s500->{psa}));
line(sprintf("    SHOW PROCESSLIST / pg_stat_activity = %.2fx; processlist / pg_stat_activity = %.2fx (target <= 1.0x)",
	$s500->{show}{median} / $s500->{psa}{median},
	$s500->{view}{median} / $s500->{psa}{median}));

line("== scale: one kill and one listing by number of sessions (medians)");
line("    sessions   kill_session   SHOW PROCESSLIST   pg_stat_activity");
for my $n (50, 200, 500)
{
	line(sprintf("    %8d   %9.3f ms   %13.3f ms   %13.3f ms", $n,
		$scale{$n}{kill}{median} * 1000, $scale{$n}{show}{median} * 1000,
		$scale{$n}{psa}{median} * 1000));
}
# ---- 5. many at once ---------------------------------------------------

# Ending every session of one role: kill_sessions() against
# pg_terminate_backend() for every PID, then waiting until all are gone
# (polled from the client every 20 us, as the bare kill above).
$main->psql('CREATE ROLE app LOGIN');
my $many = 200;
my $many_samples = $quick ? 5 : 11;

sub end_all
{
	my ($how) = @_;
	my @apps = map { KsWire->connect($main, user => 'app') } 1 .. $many;
	my @pids = map { $_->pid } @apps;
	my $t0 = time();
	if ($how eq 'kill_sessions')
	{
		my $r = $killer->query(q{SELECT count(*) FILTER (WHERE killed) FROM kill_sessions(ARRAY(SELECT id FROM processlist WHERE "user" = 'app'))});
		die "kill_sessions: $r->{error}{M}" if $r->{error};
		die "kill_sessions killed $r->{rows}[0][0]" unless $r->{rows}[0][0] == $many;
	}
	else
	{
		$killer->query(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app'});
		for my $pid (@pids)
		{
			usleep(20) while kill(0, $pid);
		}
	}
	my $elapsed = time() - $t0;
	kill(0, $_) and die "$how: $_ still there" for @pids;
	$_->close for @apps;
	return $elapsed;
}

line("== ending $many sessions of one role ($many_samples samples each, alternated)");
my %all;
for my $i (1 .. $many_samples)
{
	for my $how ($i % 2 ? ('kill_sessions', 'bare') : ('bare', 'kill_sessions'))
	{
		push @{ $all{$how} }, end_all($how);
	}
}
my %sall = map { $_ => summary(@{ $all{$_} }) } keys %all;
line("    kill_sessions(ids)                  " . fmt_ms($sall{kill_sessions}));
line("    pg_terminate_backend each, then wait" . fmt_ms($sall{bare}));
line(sprintf("    kill_sessions / pg_terminate_backend each = %.2fx (target <= 1.2x)",
	$sall{kill_sessions}{median} / $sall{bare}{median}));

$killer->close;
$main->stop;

# ---- 3. overhead of preloading ---------------------------------------------

my $with = Server->new('with', "shared_preload_libraries = 'kill_session'");
my $without = Server->new('without', '');
for my $srv ($with, $without)
{
	$srv->start;
	system("$bindir/pgbench -i -q -s 1 -h $srv->{dir} -p $srv->{port} -U postgres postgres >/dev/null 2>&1") == 0
	  or die "pgbench -i failed";
}

sub pgbench_tps
{
	my ($srv, $extra) = @_;
	my $secs = $quick ? 3 : 8;
	my $out = `$bindir/pgbench -n -S -c 2 -j 2 -T $secs $extra -h $srv->{dir} -p $srv->{port} -U postgres postgres 2>&1`;
	$out =~ /tps = ([\d.]+)/ or die "pgbench: $out";
	return $1;
}

my $rounds = $quick ? 3 : 9;
line("== overhead of preloading: pgbench -S, 2 clients, runs alternated ($rounds rounds)");
for my $mode ([ 'select-only TPS', '' ], [ 'connections/s (-C)', '-C' ])
{
	my (@w, @wo);
	for (1 .. $rounds)
	{
		push @w, pgbench_tps($with, $mode->[1]);
		push @wo, pgbench_tps($without, $mode->[1]);
	}
	my ($sw, $swo) = (summary(@w), summary(@wo));
	line(sprintf("    %-20s with %9.0f (IQR %.0f-%.0f)   without %9.0f (IQR %.0f-%.0f)   with / without = %.3fx (target within 2%%)",
		$mode->[0], $sw->{median}, $sw->{p25}, $sw->{p75},
		$swo->{median}, $swo->{p25}, $swo->{p75}, $sw->{median} / $swo->{median}));
}
$_->stop for ($with, $without);

}

# ---- 7. who blocks whom -----------------------------------------------------

# 500 sessions, 100 of them blocked: 20 holders of an advisory lock, five
# waiters behind each, the rest idle.  v$session, blockers and heads of
# chains in session IDs, against what a DBA writes today: every column of
# pg_stat_activity with pg_blocking_pids() for each row (in PIDs, with no
# head of chain).  Alternated.
if ($only eq '' || $only eq 'vsession') {

my $vs = Server->new('vsession', "shared_preload_libraries = 'kill_session'");
$vs->start;
$vs->psql('CREATE EXTENSION kill_session');
my (@holders, @waiters, @rest);
for my $h (1 .. 20)
{
	my $c = KsWire->connect($vs);
	$c->query("SELECT pg_advisory_lock($h)");
	push @holders, $c;
	for (1 .. 5)
	{
		my $w = KsWire->connect($vs);
		$w->send_query("SELECT pg_advisory_lock($h)");
		push @waiters, $w;
	}
}
push @rest, KsWire->connect($vs) while @holders + @waiters + @rest < 499;
my $dba = KsWire->connect($vs);
for (my $i = 0;; $i++)
{
	last if $dba->value(q{SELECT count(*) FROM v$session WHERE blocking_session_status = 'VALID'}) == 100;
	die 'the waiters did not all wait' if $i > 3000;
	usleep(10_000);
}
my $today = 'SELECT a.*, pg_blocking_pids(a.pid) AS blocked_by FROM pg_stat_activity a '
  . q{WHERE a.backend_type = 'client backend'};

# Each query run by pgbench (a C client, libpq) for a second or two, its
# average latency one sample; and by this script's own client, which
# reads every row in Perl, one query one sample.
sub pgbench_latency
{
	my ($srv, $sql) = @_;
	my $file = "$root/query.sql";
	open(my $fh, '>', $file) or die;
	print $fh "$sql;\n";
	close $fh;
	my $secs = $quick ? 1 : 2;
	my $out = `$bindir/pgbench -n -f $file -T $secs -h $srv->{dir} -p $srv->{port} -U postgres postgres 2>&1`;
	$out =~ /latency average = ([\d.]+) ms/ or die "pgbench: $out";
	return $1 / 1000;
}
my (%vl, %vp);
for (1 .. ($quick ? 5 : 11))
{
	push @{ $vp{vsession} }, pgbench_latency($vs, 'SELECT * FROM v$session');
	push @{ $vp{today} }, pgbench_latency($vs, $today);
}
for (1 .. $samples)
{
	push @{ $vl{vsession} }, time_query($dba, 'SELECT * FROM v$session');
	push @{ $vl{today} }, time_query($dba, $today);
}
my %svl = map { $_ => summary(@{ $vl{$_} }) } keys %vl;
my %svp = map { $_ => summary(@{ $vp{$_} }) } keys %vp;
line("== who blocks whom, 500 sessions, 100 blocked (alternated)");
line("    through libpq (pgbench, average latency of each run, " . scalar(@{ $vp{today} }) . " runs each):");
line("      SELECT * FROM v\$session                                  " . fmt_ms($svp{vsession}));
line("      pg_stat_activity with pg_blocking_pids() for each row     " . fmt_ms($svp{today}));
line(sprintf("      v\$session / pg_stat_activity with pg_blocking_pids() = %.2fx (target <= 0.5x)",
	$svp{vsession}{median} / $svp{today}{median}));
line("    through this script's Perl client, which parses every row ($samples samples each):");
line("      SELECT * FROM v\$session                                  " . fmt_ms($svl{vsession}));
line("      pg_stat_activity with pg_blocking_pids() for each row     " . fmt_ms($svl{today}));
line(sprintf("      v\$session / pg_stat_activity with pg_blocking_pids() = %.2fx",
	$svl{vsession}{median} / $svl{today}{median}));
$_->close for @holders, @waiters, @rest, $dba;
$vs->stop;

# The same view beside a long lock queue, as a DDL stuck behind a long
# transaction builds one: an ordinary role's session read her table and
# went idle in its transaction, her ALTER TABLE waits for it, and 298
# readers wait behind the ALTER: 300 waiters on one lock.  v$session is
# granted to every role, so one of her sessions reading it in a loop must
# cost the lock manager no more than the same loop over pg_locks: beside
# pgbench -N (2 clients), its TPS and how often its backends were seen
# waiting for a lock partition (LWLock LockManager, sampled every 2 ms).
# Then one call of each alone; and one call on a queue in which every
# waiter blocks every waiter behind it (LOCK TABLE, ACCESS EXCLUSIVE):
# v$session lists all of them for each, W * (W - 1) / 2 blockers, where
# pg_locks has one row per waiter.
my $qs = Server->new('queue', "shared_preload_libraries = 'kill_session'");
$qs->start;
$qs->psql('CREATE EXTENSION kill_session');
$qs->psql('CREATE ROLE app LOGIN');
$qs->psql('CREATE TABLE app_table (a int); ALTER TABLE app_table OWNER TO app');
$qs->psql('CREATE TABLE app_queue (a int); ALTER TABLE app_queue OWNER TO app');
system("$bindir/pgbench -i -q -s 10 -h $qs->{dir} -p $qs->{port} -U postgres postgres >/dev/null 2>&1") == 0
  or die "pgbench -i failed";
my $qdba = KsWire->connect($qs);

sub wait_lock_waiters
{
	my ($n) = @_;
	for (my $i = 0;; $i++)
	{
		last if $qdba->value(q{SELECT count(*) FROM pg_locks WHERE NOT granted}) >= $n;
		die 'the waiters did not all wait' if $i > 6000;
		usleep(10_000);
	}
}

sub lock_queue
{
	my ($table, $first, $rest) = @_;
	my $h = KsWire->connect($qs, user => 'app');
	$h->query("BEGIN; SELECT * FROM $table");
	my @q = (KsWire->connect($qs, user => 'app'));
	$q[0]->send_query($first);
	wait_lock_waiters(1);
	push @q, KsWire->connect($qs, user => 'app') for 2 .. 300;
	$_->send_query($rest) for @q[1 .. $#q];
	wait_lock_waiters(300);
	return ($h, @q);
}

# pgbench -N for $secs seconds beside one role's loop over $sql; its TPS
# and the share of samples of its backends waiting on LockManager.
sub beside_loop
{
	my ($sql) = @_;
	my $secs = $quick ? 3 : 6;
	my $file = "$root/loop.sql";
	open(my $fh, '>', $file) or die;
	print $fh "$sql;\n";
	close $fh;
	open(my $loop, '-|', "PGAPPNAME=loop $bindir/pgbench -n -f $file -T " . ($secs + 2)
		. " -h $qs->{dir} -p $qs->{port} -U app postgres 2>&1") or die;
	usleep(500_000);
	open(my $bench, '-|', "PGAPPNAME=bench $bindir/pgbench -n -N -c 2 -j 2 -T $secs"
		. " -h $qs->{dir} -p $qs->{port} -U postgres postgres 2>&1") or die;
	my ($seen, $waiting) = (0, 0);
	my $end = time() + $secs - 0.5;
	usleep(500_000);
	while (time() < $end)
	{
		my $r = $qdba->query(q{SELECT count(*), count(*) FILTER (WHERE wait_event = 'LockManager')
			FROM pg_stat_activity WHERE application_name = 'bench'});
		$seen += $r->{rows}[0][0];
		$waiting += $r->{rows}[0][1];
		usleep(2_000);
	}
	my $out = join('', <$bench>);
	close $bench;
	my $lout = join('', <$loop>);
	close $loop;
	$out =~ /tps = ([\d.]+)/ or die "pgbench: $out";
	my $tps = $1;
	$lout =~ /number of transactions actually processed: (\d+)/ or die "pgbench loop: $lout";
	return ($tps, $seen ? 1000 * $waiting / $seen : 0, $1);
}

my @ddl = lock_queue('app_table', 'ALTER TABLE app_table ADD COLUMN b int',
	'SELECT count(*) FROM app_table');
my (%qtps, %qwait, %qloops, %qone);
my $qrounds = $quick ? 3 : 7;
for my $i (1 .. $qrounds)
{
	for my $what ($i % 2 ? ('vsession', 'pg_locks') : ('pg_locks', 'vsession'))
	{
		my ($tps, $w, $n) = beside_loop($what eq 'vsession' ? 'SELECT * FROM v$session'
			: 'SELECT * FROM pg_locks');
		push @{ $qtps{$what} }, $tps;
		push @{ $qwait{$what} }, $w;
		push @{ $qloops{$what} }, $n;
	}
}
for (1 .. ($quick ? 5 : 11))
{
	push @{ $qone{vsession} }, pgbench_latency($qs, 'SELECT * FROM v$session');
	push @{ $qone{pg_locks} }, pgbench_latency($qs, 'SELECT * FROM pg_locks');
}
$qdba->query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
	. q{WHERE usename = 'app'});
$_->close for @ddl;
my @excl = lock_queue('app_queue', 'BEGIN; LOCK app_queue', 'BEGIN; LOCK app_queue');
for (1 .. ($quick ? 5 : 11))
{
	push @{ $qone{vsession_excl} }, pgbench_latency($qs, 'SELECT * FROM v$session');
	push @{ $qone{pg_locks_excl} }, pgbench_latency($qs, 'SELECT * FROM pg_locks');
	push @{ $qone{today_excl} }, pgbench_latency($qs, $today);
}
$qdba->query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
	. q{WHERE usename = 'app'});
$_->close for @excl, $qdba;
my %sq = map { $_ => summary(@{ $qtps{$_} }) } keys %qtps;
my %sw = map { $_ => summary(@{ $qwait{$_} }) } keys %qwait;
my %sn = map { $_ => summary(@{ $qloops{$_} }) } keys %qloops;
my %so = map { $_ => summary(@{ $qone{$_} }) } keys %qone;
line("== v\$session beside a queue of 300 waiters on one lock (a DDL behind a long transaction; alternated, $qrounds runs each)");
for my $what ('vsession', 'pg_locks')
{
	line(sprintf("    one role looping %-20s pgbench -N %7.0f tps (IQR %.0f-%.0f), LockManager waits %5.1f per 1000 samples (IQR %.1f-%.1f), %d loops",
		$what eq 'vsession' ? 'SELECT * FROM v$session' : 'SELECT * FROM pg_locks',
		$sq{$what}{median}, $sq{$what}{p25}, $sq{$what}{p75},
		$sw{$what}{median}, $sw{$what}{p25}, $sw{$what}{p75}, $sn{$what}{median}));
}
line(sprintf("    pgbench -N TPS, pg_locks loop / v\$session loop = %.2fx; LockManager waits, v\$session loop / pg_locks loop = %s (targets <= 1.1x)",
	$sq{pg_locks}{median} / $sq{vsession}{median},
	$sw{pg_locks}{median} > 0 ? sprintf('%.2fx', $sw{vsession}{median} / $sw{pg_locks}{median})
	  : sprintf('%.1f vs %.1f per 1000', $sw{vsession}{median}, $sw{pg_locks}{median})));
line("    one call alone (pgbench, average latency of each run):");
line("      SELECT * FROM v\$session                                  " . fmt_ms($so{vsession}));
line("      SELECT * FROM pg_locks                                    " . fmt_ms($so{pg_locks}));
line(sprintf("      v\$session / pg_locks = %.2fx (target <= 1.5x)",
	$so{vsession}{median} / $so{pg_locks}{median}));
line("    one call on a queue where each waiter blocks all behind it (44,850 blockers listed):");
line("      SELECT * FROM v\$session                                  " . fmt_ms($so{vsession_excl}));
line("      SELECT * FROM pg_locks                                    " . fmt_ms($so{pg_locks_excl}));
line("      pg_stat_activity with pg_blocking_pids() for each row     " . fmt_ms($so{today_excl}));
line(sprintf("      v\$session / pg_locks = %.2fx; v\$session / pg_stat_activity with pg_blocking_pids() = %.2fx",
	$so{vsession_excl}{median} / $so{pg_locks_excl}{median},
	$so{vsession_excl}{median} / $so{today_excl}{median}));
$qs->stop;

}

# ---- 6. a cluster ---------------------------------------------------------

# A primary (node 1) and two streaming standbys (nodes 2 and 3), the
# directory on the primary, each node also on 127.0.0.1 with TLS (a CA
# made for the run).  From node 1, alternated: a kill of a local session;
# a kill of a node 2 session on the connection kept from the call before;
# and one on a cold connection (kill_session_disconnect_all() first,
# untimed); then a client's new connection to node 2 and its first query,
# on its own.  The same over TLS (verify-full, channel binding) with SCRAM.
# Then the cluster list of 3 x 500 sessions on kept connections against
# the slowest of the three nodes' own lists, read in the same round.
if ($only eq '' || $only eq 'cluster') {

sub standby_of
{
	my ($primary, $name, $conf) = @_;
	my $self = bless { name => $name, dir => "$root/$name", port => $next_port++ },
	  'Server';
	push @servers, $self;
	system("$bindir/pg_basebackup -h $primary->{dir} -p $primary->{port} -U postgres "
		  . "-D $self->{dir} -R -X stream >/dev/null 2>&1") == 0
	  or die "pg_basebackup failed";
	open(my $fh, '>>', "$self->{dir}/postgresql.conf") or die;
	print $fh "port = $self->{port}\nunix_socket_directories = '$self->{dir}'\n$conf\n";
	close $fh;
	$self->start;
	return $self;
}

my $tls = "$root/tls";
mkdir $tls;
ks_make_certs($tls);

my @cluster = (Server->new('node1',
	"shared_preload_libraries = 'kill_session'\nkill_session.node_id = 1\n"
	  . "listen_addresses = '127.0.0.1'\nssl = on\n"
	  . "ssl_cert_file = '$tls/node.crt'\nssl_key_file = '$tls/node.key'"));
{
	my $hba = "$cluster[0]{dir}/pg_hba.conf";
	open(my $fh, '<', $hba) or die;
	my $old = do { local $/; <$fh> };
	close $fh;
	open($fh, '>', $hba) or die;
	print $fh "hostssl all bench 127.0.0.1/32 scram-sha-256\n$old";
	close $fh;
}
$cluster[0]->start;
$cluster[0]->psql('CREATE EXTENSION kill_session');
$cluster[0]->psql('CREATE EXTENSION postgres_fdw');
$cluster[0]->psql("CREATE ROLE bench LOGIN SUPERUSER PASSWORD 'bench-secret'");
push @cluster, standby_of($cluster[0], "node$_", "kill_session.node_id = $_") for 2, 3;
for my $i (0 .. 2)
{
	my ($n, $srv) = ($i + 1, $cluster[$i]);
	$cluster[0]->psql("CREATE SERVER node$n FOREIGN DATA WRAPPER postgres_fdw "
		  . "OPTIONS (host '$srv->{dir}', port '$srv->{port}', dbname 'postgres'); "
		  . "CREATE USER MAPPING FOR postgres SERVER node$n; "
		  . "CREATE SERVER tls$n FOREIGN DATA WRAPPER postgres_fdw "
		  . "OPTIONS (host '127.0.0.1', port '$srv->{port}', dbname 'postgres', "
		  . "sslmode 'verify-full', sslrootcert '$tls/ca.crt', channel_binding 'require'); "
		  . "CREATE USER MAPPING FOR postgres SERVER tls$n "
		  . "OPTIONS (user 'bench', password 'bench-secret'); "
		  . "INSERT INTO kill_session_nodes VALUES ($n, 'node$n')");
}
usleep(10_000) until $cluster[2]->psql('SELECT count(*) FROM kill_session_nodes') eq '3';

# Kills from node 1 of local and node 2 sessions, on kept and cold
# connections, alternated; and a client's own new connection to node 2.
sub cluster_kills
{
	my ($caller, $connect) = @_;
	my %t;
	my @order = ('local', 'kept', 'cold');
	$caller->query("SELECT kill_session('0, 0, \@2')");	# warm: a kept connection
	for my $i (1 .. $samples)
	{
		for my $where (@order)
		{
			my $t = KsWire->connect($cluster[ $where eq 'local' ? 0 : 1 ]);
			my $id = $t->session_id;
			$caller->query('SELECT kill_session_disconnect_all()') if $where eq 'cold';
			# Let the processes just started or ended settle on both cores
			# (the node's session closed by disconnect_all ends meanwhile).
			usleep(30_000);
			my $t0 = time();
			my $r = $caller->query("SELECT kill_session('$id')");
			push @{ $t{$where} }, time() - $t0;
			die "kill_session failed: " . ($r->{error}{M} // '')
			  unless ($r->{rows}[0][0] // '') eq 't';
			$t->close;
		}
		push @order, shift @order;
		usleep(30_000);
		push @{ $t{connect} }, $connect->();
	}
	return map { $_ => summary(@{ $t{$_} }) } keys %t;
}

sub report_kills
{
	my ($title, %s) = @_;
	line("== a cluster of three nodes, $title: a kill from node 1 ($samples samples each, rotated)");
	line("    kill_session of a node 1 session         " . fmt_ms($s{local}));
	line("    of a node 2 session, kept connection     " . fmt_ms($s{kept}));
	line("    of a node 2 session, cold connection     " . fmt_ms($s{cold}));
	line("    a client's new connection to node 2, 1 query " . fmt_ms($s{connect}));
	line(sprintf("    kept / local = %.2fx (target <= 1.2x); cold / (local + one connection) = %.2fx (target <= 1.0x)",
		$s{kept}{median} / $s{local}{median},
		$s{cold}{median} / ($s{local}{median} + $s{connect}{median})));
}

# A client's new connection and its first query, as libpq makes them (the
# library that forwarding uses), from a client that has connected before,
# as the caller's backend has: one psycopg process serves every sample and
# times each connection and SELECT 1 itself.
my $libpq_pid = open2(my $libpq_out, my $libpq_in, '/usr/bin/python3', '-c', <<'PY');
import sys, time, psycopg
for line in sys.stdin:
    t0 = time.perf_counter()
    with psycopg.connect(line.strip()) as c:
        c.execute("SELECT 1").fetchall()
        t = time.perf_counter() - t0
    print(t, flush=True)
PY
sub libpq_connect
{
	my ($conninfo) = @_;
	print $libpq_in "$conninfo\n";
	$libpq_in->flush;
	my $t = <$libpq_out>;
	die "the libpq client failed" unless defined $t;
	chomp $t;
	return $t;
}

my $caller = KsWire->connect($cluster[0]);
my $unix_conninfo = "host=$cluster[1]{dir} port=$cluster[1]{port} user=postgres dbname=postgres";
libpq_connect($unix_conninfo);
report_kills('over Unix sockets',
	cluster_kills($caller, sub { libpq_connect($unix_conninfo); }));
$cluster[0]->psql("UPDATE kill_session_nodes SET server_name = 'tls' || node_id");
usleep(10_000)
  until $cluster[2]->psql('SELECT min(server_name) FROM kill_session_nodes') eq 'tls1';
$caller->query('SELECT kill_session_disconnect_all()');
report_kills('over TLS with SCRAM',
	cluster_kills($caller, sub {
		libpq_connect("host=127.0.0.1 port=$cluster[1]{port} user=bench password=bench-secret "
			  . "dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.crt channel_binding=require");
	}));
$cluster[0]->psql("UPDATE kill_session_nodes SET server_name = 'node' || node_id");
usleep(10_000)
  until $cluster[2]->psql('SELECT min(server_name) FROM kill_session_nodes') eq 'node1';
$caller->query('SELECT kill_session_disconnect_all()');
line("    (a client's new connection: libpq's, in a client that has connected before;"
	  . " every sample after 30 ms at rest)");
close $libpq_in;
waitpid($libpq_pid, 0);

my $per_node = 500;
my @held;
for my $srv (@cluster)
{
	push @held, KsWire->connect($srv) for 1 .. $per_node - ($srv == $cluster[0] ? 1 : 0);
}
my @listers = ($caller, map { KsWire->connect($_) } @cluster[ 1, 2 ]);
my %lists;
$caller->query('SELECT count(*) FROM cluster_processlist');	# warm: kept connections
for my $i (1 .. $samples)
{
	my $t0 = time();
	my $r = $caller->query('SELECT count(*) FROM cluster_processlist');
	push @{ $lists{cluster} }, time() - $t0;
	die "cluster list: " . ($r->{error}{M} // $r->{rows}[0][0])
	  unless ($r->{rows}[0][0] // 0) >= 3 * $per_node;
	my $slowest = 0;
	my $sum = 0;
	for my $l (@listers)
	{
		$t0 = time();
		$l->query('SELECT count(*) FROM processlist');
		my $took = time() - $t0;
		$slowest = $took if $took > $slowest;
		$sum += $took;
	}
	push @{ $lists{slowest} }, $slowest;
	push @{ $lists{sequence} }, $sum;
	$t0 = time();
	$caller->query('SELECT count(*) FROM (SELECT * FROM processlist UNION ALL '
		  . 'SELECT * FROM processlist UNION ALL SELECT * FROM processlist) l');
	push @{ $lists{triple} }, time() - $t0;
}
my %sl = map { $_ => summary(@{ $lists{$_} }) } keys %lists;
line("== the cluster list, 3 nodes x $per_node sessions, kept connections ($samples samples each)");
line("    count(*) of cluster_processlist          " . fmt_ms($sl{cluster}));
line("    the slowest node's own processlist       " . fmt_ms($sl{slowest}));
line("    the three nodes' own lists, one after another " . fmt_ms($sl{sequence}));
line("    node 1's own list three times in one query   " . fmt_ms($sl{triple}));
line(sprintf("    cluster list / slowest node's list = %.2fx (target <= 1.2x); "
	  . "/ the three in sequence = %.2fx; / node 1's list three times = %.2fx",
	$sl{cluster}{median} / $sl{slowest}{median},
	$sl{cluster}{median} / $sl{sequence}{median},
	$sl{cluster}{median} / $sl{triple}{median}));
$_->close for @held, @listers;
$_->stop for reverse @cluster;

}

# ---- 8. on record -----------------------------------------------------------

# The history's cost: a kill with the history on (its row written before
# the signal, completed after) against the same kill on a server with
# kill_session.history_size = 0, alternated; then reading a full ring of
# 1,000 rows against pg_stat_activity with 500 sessions, on that server,
# through libpq (pgbench) and through this script's client.
if ($only eq '' || $only eq 'record' || $only eq 'record-kill') {

# Two servers, A and B; each has the history on for half of the pairs and
# off for the other half (a restart swaps them), so that what differs
# between the two servers themselves cancels out.
my @ab = (Server->new('record_a', "shared_preload_libraries = 'kill_session'"),
	Server->new('record_b', "shared_preload_libraries = 'kill_session'"));
my %rk;

sub record_setup
{
	my ($on_index) = @_;
	for my $k (0, 1)
	{
		my $srv = $ab[$k];
		$srv->stop;
		open(my $fh, '>>', "$srv->{dir}/postgresql.conf") or die;
		print $fh "kill_session.history_size = " . ($k == $on_index ? 1000 : 0) . "\n";
		close $fh;
		$srv->start;
		$srv->psql('CREATE EXTENSION IF NOT EXISTS kill_session');
		$rk{ $srv->{name} } = KsWire->connect($srv);
	}
	return ($ab[$on_index], $ab[1 - $on_index]);
}

sub record_kill
{
	my ($srv) = @_;
	my $t = KsWire->connect($srv);
	my $id = $t->session_id;
	my $pid = $t->pid;
	my $t0 = time();
	my $r = $rk{ $srv->{name} }->query("SELECT kill_session('$id', reason => 'bench')");
	my $elapsed = time() - $t0;
	die "kill_session failed" unless ($r->{rows}[0][0] // '') eq 't';
	die "target $pid still there" if kill(0, $pid);
	$t->close;
	return $elapsed;
}

my $kills = $quick ? 40 : 500;
my (%kl, @pair);
my ($on, $off);
for my $half (0, 1)
{
	$_->close for values %rk;
	($on, $off) = record_setup($half);
	record_kill($_) for $on, $off;	# warm
	for my $i (1 .. $kills / 2)
	{
		my %one;
		for my $srv ($i % 2 ? ($on, $off) : ($off, $on))
		{
			$one{ $srv == $on ? 'on' : 'off' } = record_kill($srv);
		}
		push @{ $kl{$_} }, $one{$_} for keys %one;
		push @pair, $one{on} / $one{off};
	}
}
my %skl = map { $_ => summary(@{ $kl{$_} }) } keys %kl;
my $spair = summary(@pair);
line("== on record: a kill of an idle session, history on and off ($kills pairs, each on then off or off then on;"
	  . " each of two servers on for half of them)");
line("    history_size = 1000                 " . fmt_ms($skl{on}));
line("    history_size = 0                    " . fmt_ms($skl{off}));
line(sprintf("    on / off: the medians' ratio %.3fx; the median of the pairs' ratios %.3fx (IQR %.3f-%.3f) (target <= 1.02x)",
	$skl{on}{median} / $skl{off}{median},
	$spair->{median}, $spair->{p25}, $spair->{p75}));

# KS_BENCH_ONLY=record-kill: the kills alone.
if ($only ne 'record-kill') {

# A full ring: 1,000 rows, each with its statement.
while ($on->psql('SELECT count(*) FROM kill_session_history') < 1000)
{
	my @v = map { KsWire->connect($on) } 1 .. 100;
	$_->query("SELECT 'a statement of this session, as the history keeps it'") for @v;
	my $ids = join(',', map { $_->session_id } @v);
	$rk{ $on->{name} }->query("SELECT count(*) FROM kill_sessions(ARRAY[$ids], 'bench')");
	$_->close for @v;
}
my @idle = map { KsWire->connect($on) } 1 .. 498;
my (%rp, %rl);
for (1 .. ($quick ? 5 : 11))
{
	push @{ $rp{history} }, pgbench_latency($on, 'SELECT * FROM kill_session_history');
	push @{ $rp{psa} }, pgbench_latency($on, 'SELECT * FROM pg_stat_activity');
	push @{ $rp{history_built} }, pgbench_latency($on, 'SELECT count(*) FROM kill_session_history');
	push @{ $rp{psa_built} }, pgbench_latency($on, 'SELECT count(*) FROM pg_stat_activity');
}
for (1 .. $samples)
{
	push @{ $rl{history} }, time_query($rk{ $on->{name} }, 'SELECT * FROM kill_session_history');
	push @{ $rl{psa} }, time_query($rk{ $on->{name} }, 'SELECT * FROM pg_stat_activity');
}
my %srp = map { $_ => summary(@{ $rp{$_} }) } keys %rp;
my %srl = map { $_ => summary(@{ $rl{$_} }) } keys %rl;
line("== on record: reading 1,000 history rows, against pg_stat_activity with 500 sessions (alternated)");
line("    through libpq (pgbench, average latency of each run, " . scalar(@{ $rp{psa} }) . " runs each):");
line("      SELECT * FROM kill_session_history  " . fmt_ms($srp{history}));
line("      SELECT * FROM pg_stat_activity      " . fmt_ms($srp{psa}));
line(sprintf("      history / pg_stat_activity = %.2fx (target <= 0.5x); per row %.2fx",
	$srp{history}{median} / $srp{psa}{median},
	($srp{history}{median} / 1000) / ($srp{psa}{median} / 500)));
line("      the rows built but not sent, count(*):");
line("      SELECT count(*) FROM kill_session_history " . fmt_ms($srp{history_built}));
line("      SELECT count(*) FROM pg_stat_activity     " . fmt_ms($srp{psa_built}));
line(sprintf("      history / pg_stat_activity = %.2fx",
	$srp{history_built}{median} / $srp{psa_built}{median}));
line("    through this script's Perl client, which parses every row ($samples samples each):");
line("      SELECT * FROM kill_session_history  " . fmt_ms($srl{history}));
line("      SELECT * FROM pg_stat_activity      " . fmt_ms($srl{psa}));
line(sprintf("      history / pg_stat_activity = %.2fx",
	$srl{history}{median} / $srl{psa}{median}));
$_->close for @idle;

# A stress run: three killers in parallel, for 10 minutes (30 s with
# KS_BENCH_QUICK), each doing in turn a kill, a disconnect after the
# transaction (its session then commits), a cancel of a running statement
# and a kill_sessions of two, about ten actions a second; then every
# action the killers did must be in the history and in the counters, by
# action, each with its outcome, none lost.
my $st = Server->new('record_stress',
	"shared_preload_libraries = 'kill_session'\nkill_session.history_size = 20000");
$st->start;
$st->psql('CREATE EXTENSION kill_session');
my @sk = map { KsWire->connect($st) } 1 .. 3;
my $secs = $quick ? 30 : 600;
my $end = time() + $secs;
my %did;
my $round = 0;
while (time() < $end)
{
	my $t0 = time();
	my (@v, @after);
	for my $k (0 .. 2)
	{
		my $kind = ($round + $k) % 4;
		my $w = KsWire->connect($st);
		my $id = $w->session_id;
		push @v, $w;
		if ($kind == 0)
		{
			$sk[$k]->send_query("SELECT kill_session('$id', reason => 'stress')");
			$did{kill}++;
		}
		elsif ($kind == 1)
		{
			$w->query('BEGIN');
			$sk[$k]->send_query("SELECT disconnect_session('$id', post_transaction => true)");
			push @after, $w;
			$did{'disconnect post_transaction'}++;
		}
		elsif ($kind == 2)
		{
			my $pid = $w->pid;
			$w->send_query('SELECT pg_sleep(10)');
			usleep(1000) until $st->psql("SELECT state FROM pg_stat_activity WHERE pid = $pid") eq 'active';
			$sk[$k]->send_query("SELECT cancel_sql('$id')");
			$did{cancel}++;
		}
		else
		{
			my $w2 = KsWire->connect($st);
			push @v, $w2;
			$sk[$k]->send_query("SELECT count(*) FROM kill_sessions(ARRAY[$id, " . $w2->session_id . '])');
			$did{kill} += 2;
		}
	}
	for my $k (0 .. 2)
	{
		my $r = $sk[$k]->read_result(60);
		die "stress: $r->{error}{M}" if $r->{error};
	}
	$_->query('COMMIT') for @after;
	$_->close for @v;
	$round++;
	my $rest = 0.3 - (time() - $t0);
	usleep($rest * 1e6) if $rest > 0;
}
usleep(100_000);
my $total = 0;
$total += $_ for values %did;
my %hist = map { split /\|/ } split /\n/,
  $st->psql('SELECT action, count(*) FROM kill_session_history WHERE outcome IS NOT NULL GROUP BY 1');
my %stat = map { split /\|/ } split /\n/,
  $st->psql('SELECT action, sum(count) FROM kill_session_stats GROUP BY 1');
my $lost = 0;
for my $a (keys %did)
{
	$lost += abs($did{$a} - ($hist{$a} // 0)) + abs($did{$a} - ($stat{$a} // 0));
}
my $pending = $st->psql('SELECT count(*) FROM kill_session_history WHERE outcome IS NULL');
my $outcomes = $st->psql(q{SELECT string_agg(action || ' ' || outcome || ' ' || n, ', ' ORDER BY action, outcome) }
	  . q{FROM (SELECT action, outcome, count(*) AS n FROM kill_session_history GROUP BY 1, 2) o});
line("== on record: stress, 3 killers for ${secs} s: $total actions ("
	  . join(', ', map { "$_ $did{$_}" } sort keys %did) . ')');
line("    in the history: " . join(', ', map { "$_ " . ($hist{$_} // 0) } sort keys %did)
	  . "; in the counters: " . join(', ', map { "$_ " . ($stat{$_} // 0) } sort keys %did)
	  . "; lost $lost, without an outcome $pending (target: none lost, at least 2,000 actions)");
line("    outcomes: $outcomes");
$_->close for @sk;
$st->stop;

}
$_->close for values %rk;
$_->stop for $on, $off;

}

# ---- 9. idle blockers ---------------------------------------------------------

# kill_session.max_idle_blocker_time and kill_blockers(): how soon after a
# session qualifies it ends; what the policy costs pgbench while nobody
# blocks; what the checker costs with 500 idle sessions and nobody
# waiting, and that it never reads the lock graph then; kill_blockers()
# against the script a DBA writes today.
if ($only eq '' || $only eq 'blockers') {

my $pb = Server->new('blockers', "shared_preload_libraries = 'kill_session'");
$pb->start;
$pb->psql('CREATE EXTENSION kill_session');
$pb->psql('CREATE TABLE bt (id int PRIMARY KEY, v int); INSERT INTO bt VALUES (1, 0); CREATE TABLE bq (a int)');
system("$bindir/pgbench -i -q -s 1 -h $pb->{dir} -p $pb->{port} -U postgres postgres >/dev/null 2>&1") == 0
  or die "pgbench -i failed";
$pb->psql("CREATE ROLE idler LOGIN; GRANT ALL ON bt, bq TO idler; ALTER ROLE idler SET kill_session.max_idle_blocker_time = '200ms'");
$pb->psql('CREATE ROLE holder LOGIN; GRANT ALL ON bt, bq TO holder');

sub wait_lock
{
	my ($w) = @_;
	my $pid = $w->pid;
	usleep(200) until $pb->psql("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $pid") eq 'Lock';
}

# Precision: the blocker's FATAL, from the moment it qualified (the
# waiter's wait start + 200 ms, as pg_locks shows the start).
my $nrounds = $quick ? 40 : 200;
my @late;
my $w = KsWire->connect($pb);
for (1 .. $nrounds)
{
	my $s = KsWire->connect($pb, user => 'idler');
	$s->query('BEGIN');
	$s->query('UPDATE bt SET v = v + 1 WHERE id = 1');
	my $wpid = $w->pid;
	$w->send_query('UPDATE bt SET v = v + 1 WHERE id = 1');
	wait_lock($w);
	my $start = $pb->psql("SELECT extract(epoch FROM waitstart) FROM pg_locks WHERE pid = $wpid AND NOT granted");
	my $m = $s->read_message(10);
	my $t_end = time();
	die "the blocker was not ended" unless $m && ($m->{fields}{C} // '') eq '25P03';
	push @late, $t_end - ($start + 0.2);
	$w->read_result(10);
	$s->close;
}
my @sl = sort { $a <=> $b } @late;
line("== idle blockers: from the moment the blocker qualified to its FATAL at its client ($nrounds rounds,"
	  . " limit 200 ms, kill_session.checker_naptime 1 s)");
line(sprintf("    median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 <= the nap + 50 ms)",
	1000 * quantile(\@sl, 0.5), 1000 * quantile(\@sl, 0.9), 1000 * quantile(\@sl, 0.99), 1000 * $sl[-1]));
$w->close;

# pgbench with the policy on (1 s, no blocker) and off: each round runs
# both, in turn first, and gives a pair's ratio.
for my $mode ([ 'select-only TPS', '', $quick ? 3 : 9 ], [ 'connections/s (-C)', '-C', $quick ? 3 : 15 ])
{
	my (@on, @off, @ratio);
	for my $round (1 .. $mode->[2])
	{
		my %one;
		for my $v ($round % 2 ? ('1s', '0') : ('0', '1s'))
		{
			$pb->psql("ALTER SYSTEM SET kill_session.max_idle_blocker_time = '$v'");
			$pb->psql('SELECT pg_reload_conf()');
			usleep(200_000);
			$one{$v} = pgbench_tps($pb, $mode->[1]);
		}
		push @on, $one{'1s'};
		push @off, $one{'0'};
		push @ratio, $one{'1s'} / $one{'0'};
	}
	my ($son, $soff, $sr) = (summary(@on), summary(@off), summary(@ratio));
	line("== idle blockers: pgbench" . ($mode->[1] ? " $mode->[1]" : '') . " -S, 2 clients, kill_session.max_idle_blocker_time 1s against 0 ($mode->[2] rounds, each both, in turn first)");
	line(sprintf("    %-20s on %9.0f (IQR %.0f-%.0f)   off %9.0f (IQR %.0f-%.0f)",
		$mode->[0], $son->{median}, $son->{p25}, $son->{p75},
		$soff->{median}, $soff->{p25}, $soff->{p75}));
	line(sprintf("    on / off: the medians' ratio %.3fx; the median of the rounds' ratios %.3fx (IQR %.3f-%.3f) (target within 2%%)",
		$son->{median} / $soff->{median}, $sr->{median}, $sr->{p25}, $sr->{p75}));
}

# The checker with 500 idle sessions and nobody waiting, the policy on.
my @many = map { KsWire->connect($pb, user => 'idler') } 1 .. 500;
$_->query('BEGIN') for @many[0 .. 249];
$_->query('SELECT count(*) FROM bq') for @many[0 .. 249];
my $secs = $quick ? 10 : 60;
my $tick = `getconf CLK_TCK`;
chomp $tick;
for my $nap ('1s', '100ms')
{
	$pb->psql("ALTER SYSTEM SET kill_session.max_idle_blocker_time = '1s'");
	$pb->psql("ALTER SYSTEM SET kill_session.checker_naptime = '$nap'");
	$pb->psql('SELECT pg_reload_conf()');
	usleep(300_000);
	my ($cpid, $passes0, $reads0) = split /\|/, $pb->psql('SELECT pid, passes, graph_reads FROM kill_session_checker');
	my $cpu = sub {
		open(my $fh, '<', "/proc/$cpid/stat") or die;
		my @f = split / /, (split /\) /, scalar <$fh>)[1];
		return ($f[11] + $f[12]) / $tick;
	};
	my ($c0, $t0) = ($cpu->(), time());
	sleep $secs;
	my ($c1, $t1) = ($cpu->(), time());
	my (undef, $passes1, $reads1) = split /\|/, $pb->psql('SELECT pid, passes, graph_reads FROM kill_session_checker');
	line(sprintf("== idle blockers: the checker, 500 idle sessions (250 in a transaction, all with a 200 ms limit), nobody waiting, nap %s, %d s:"
		  . " %.3f%% of a core, %d passes, %d lock-graph reads (target < 1%%, no read)",
		$nap, $secs, 100 * ($c1 - $c0) / ($t1 - $t0), $passes1 - $passes0, $reads1 - $reads0));
}
$_->close for @many;
$pb->psql('ALTER SYSTEM RESET kill_session.max_idle_blocker_time');
$pb->psql('ALTER SYSTEM RESET kill_session.checker_naptime');
$pb->psql('SELECT pg_reload_conf()');

# kill_blockers() against pg_blocking_pids() + pg_terminate_backend(pid,
# 5000) + polling pg_locks until the waiter holds its lock, alternated.
my $dba = KsWire->connect($pb);
my (%kb);
for my $i (1 .. ($quick ? 10 : 50))
{
	for my $how ($i % 2 ? ('kill_blockers', 'script') : ('script', 'kill_blockers'))
	{
		my $s = KsWire->connect($pb, user => 'holder');
		$s->query('BEGIN');
		$s->query('SELECT count(*) FROM bq');
		my $w2 = KsWire->connect($pb);
		my $wpid = $w2->pid;
		my $wid = $w2->session_id;
		$w2->query('BEGIN');
		$w2->send_query('LOCK TABLE bq');
		wait_lock($w2);
		my $held = "SELECT count(*) FROM pg_locks WHERE pid = $wpid AND granted AND mode = 'AccessExclusiveLock' AND relation = 'bq'::regclass";
		my $t0 = time();
		if ($how eq 'kill_blockers')
		{
			my $r = $dba->query("SELECT done FROM kill_blockers('$wid')");
			die "kill_blockers: " . ($r->{error}{M} // 'not done') unless ($r->{rows}[0][0] // '') eq 't';
			die "not held at return" unless $dba->query($held)->{rows}[0][0] eq '1';
		}
		else
		{
			my $pids = $dba->query("SELECT unnest(pg_blocking_pids($wpid))")->{rows};
			$dba->query("SELECT pg_terminate_backend($_->[0], 5000)") for @$pids;
			usleep(0) until $dba->query($held)->{rows}[0][0] eq '1';
		}
		push @{ $kb{$how} }, time() - $t0;
		$w2->read_result(10);
		$w2->close;
		$s->close;
	}
}
my %skb = map { $_ => summary(@{ $kb{$_} }) } keys %kb;
line("== idle blockers: releasing a waiter (ALTER-style LOCK behind an idle transaction), " . scalar(@{ $kb{script} }) . " each, alternated");
line("    kill_blockers()                              " . fmt_ms($skb{kill_blockers}));
line("    pg_blocking_pids + pg_terminate_backend(5000)" . fmt_ms($skb{script}));
line(sprintf("    kill_blockers / script = %.3fx (target <= 0.5x)",
	$skb{kill_blockers}{median} / $skb{script}{median}));
$dba->close;
$pb->stop;

}

finish();
