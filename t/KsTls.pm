# A certificate authority and a certificate of 127.0.0.1 signed by it, made
# for one run, for the nodes that speak TLS in the tests and the benchmark.

package KsTls;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(ks_make_certs);

# Write ca.crt, node.crt and node.key (mode 0600) into $dir.
sub ks_make_certs
{
	my ($dir) = @_;
	for my $cmd (
		"openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kill_session-test-ca -keyout $dir/ca.key -out $dir/ca.crt",
		"openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout $dir/node.key -out $dir/node.csr",
		"printf 'subjectAltName=IP:127.0.0.1\\n' > $dir/san.ext",
		"openssl x509 -req -in $dir/node.csr -CA $dir/ca.crt -CAkey $dir/ca.key -CAcreateserial -days 2 -extfile $dir/san.ext -out $dir/node.crt")
	{
		system("$cmd >/dev/null 2>&1") == 0 or die "failed: $cmd";
	}
	chmod 0600, "$dir/node.key";
}

1;
