// Package mototest gives each test an aws-sdk-go-v2 configuration that talks
// to a real EC2 wire-protocol emulator, moto.
//
// The emulator is the one named by LEAKLESS_TEST_MOTO_URL. Without it,
// mototest starts moto_server (found on PATH) on a free 127.0.0.1 port, once
// per test binary, and a watcher process stops it as soon as the binary
// exits, however it exits. With no emulator to be had, tests skip with a
// message saying how to enable them, unless CI is set, in which case they
// fail.
//
// Every call to [New] gets a moto account of its own (moto keys its state by
// the x-moto-account-id header), so tests may run in parallel, in one binary
// or many, without seeing each other's instances. A server this package
// started is also reset (POST /moto-api/reset) whenever a test asks for it
// while no other test is using it; a server named by LEAKLESS_TEST_MOTO_URL
// may be shared with other binaries and is never reset.
//
//	func TestSomething(t *testing.T) {
//		client := ec2.NewFromConfig(mototest.New(t))
//		...
//	}
package mototest
