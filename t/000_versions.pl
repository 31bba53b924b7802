# The control file is the one source of the version: META.json (PGXN) and
# debian/changelog must agree with it.  The supported PostgreSQL versions,
# 15 to 18, agree in META.json, debian/pgversions and the README's table.

use strict;
use warnings FATAL => 'all';
use Test::More;

sub slurp
{
	my ($file) = @_;
	open(my $fh, '<', $file) or die "cannot read $file: $!";
	local $/;
	return <$fh>;
}

my ($version) = slurp('kill_session.control') =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $version, "kill_session.control has a default_version");
# Installed as the base script and the one-step upgrades up to $version.
my ($base) = map { /^kill_session--([\d.]+)\.sql$/ ? $1 : () } glob('kill_session--*.sql');
ok(defined $base, 'there is one base install script');
my $at = $base;
while ($at ne $version)
{
	my ($next) = map { /^kill_session--\Q$at\E--([\d.]+)\.sql$/ ? $1 : () }
	  glob("kill_session--$at--*.sql");
	last unless defined $next;
	$at = $next;
}
is($at, $version, "upgrade scripts lead from $base to $version");

# PGXN wants three-part versions: 1.0 is 1.0.0.
my $semver = $version =~ /^\d+\.\d+$/ ? "$version.0" : $version;
my $meta = slurp('META.json');
my @meta_versions = $meta =~ /"version"\s*:\s*"([^"]+)"/g;
# the last "version" is the meta-spec's own
pop @meta_versions;
is_deeply(\@meta_versions, [ $semver, $semver ],
	"META.json's distribution and extension versions are $semver");
like($meta, qr/"file"\s*:\s*"kill_session--\Q$base\E\.sql"/,
	'META.json names the base install script');

my ($deb) = slurp('debian/changelog') =~ /^kill-session \(([^)]+)\)/;
(my $upstream = $deb // '') =~ s/-[^-]+$//;
is($upstream, $version, "debian/changelog's newest entry is $version");

my ($low, $high) = $meta =~ /"PostgreSQL"\s*:\s*">= (\d+)\.0\.0, < (\d+)\.0\.0"/;
is("$low-" . ($high - 1), '15-18', 'META.json: PostgreSQL 15 to 18');
like(slurp('debian/pgversions'), qr/^15\+$/m, 'debian/pgversions: 15 and later');
my $readme = slurp('README.md');
for my $v (15 .. 18)
{
	like($readme, qr/^\| $v \| supported/m, "the README's version table lists $v as supported");
}
like($readme, qr/^\| 13, 14 \| not supported/m, 'and 13 and 14 as not supported');

done_testing();
