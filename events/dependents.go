package events

// The event types of the sweeper's dependents step: volumes, network
// interfaces, Elastic IPs and spot requests that outlived their instance.
const (
	// TypeDependentDetected is emitted when an owned dependent's
	// resource-id tag names a removed or missing row.
	TypeDependentDetected = "dependent.detected"
	// TypeDependentReaped is emitted when the sweeper deleted, released
	// or cancelled a confirmed dependent (or found it gone).
	TypeDependentReaped = "dependent.reaped"
	// TypeDependentReapFailed is emitted when it could not.
	TypeDependentReapFailed = "dependent.reap_failed"
	// TypeDependentsAborted is emitted when the dependents step reaped
	// nothing, for the reason given.
	TypeDependentsAborted = "dependent.aborted"
	// TypeDependentDryRun is emitted for each dependent a dry run would
	// have reaped.
	TypeDependentDryRun = "dependent.dry_run"
)
