// Package leaklesstest helps a host test its own use of leakless, as
// rivertest helps River's users: assertions that nothing leaked and that
// an event was emitted, and the Store contract suite for a host that
// brings its own Store.
//
//	func TestDeleteLeavesNothingRunning(t *testing.T) {
//		// ... create and delete workspaces, run sw.SweepOnce ...
//		leaklesstest.RequireNoLeaks(t, st, ec2Client)
//		leaklesstest.RequireEvent(t, sink, events.TypeReaped, workspaceID)
//	}
//
// [RequireNoLeaks] fails the test naming every owned instance no row
// explains and every removed row still holding an instance;
// [RequireEvent] fails it unless an in-memory sink holds the event;
// [StoreContract] runs the suite store.Postgres and store.Memory pass.
package leaklesstest
