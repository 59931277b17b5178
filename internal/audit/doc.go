// Package audit is the read-only census of a deployment's owned
// instances (and, given a [DependentLister], their volumes, interfaces,
// Elastic IPs and spot requests) against the host table: it sorts each
// into one class, prices the classes with an estimate, and reads the
// pending backlog and the permanent leaks from the ledger. The leakless
// command's audit and the demo's closing report both take it:
//
//	r, err := audit.Take(ctx, audit.Config{
//		Inventory: cloud, Types: client, Store: st, Ledger: sink,
//		Owner: owner, Table: "workspaces", Prices: prices, // audit.LoadPrices("")
//		Dependents: cloud, // optional
//	})
//	if err != nil {
//		return err
//	}
//	r.WriteTable(os.Stdout)
package audit
