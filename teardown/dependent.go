package teardown

import "time"

// The kinds of [Dependent].
const (
	DependentVolume      = "volume"       // an EBS volume
	DependentInterface   = "interface"    // a network interface
	DependentAddress     = "address"      // an Elastic IP, by allocation id
	DependentSpotRequest = "spot_request" // a spot instance request
)

// Dependent is a resource that an instance leaves behind when it is
// terminated, as a dependents inventory reports it: a volume, a network
// interface, an Elastic IP or a spot request that outlived its instance.
type Dependent struct {
	Kind  string // one of the Dependent* kinds
	ID    string // the volume, interface, allocation or spot request id
	State string // as the cloud names it: available, unassociated, open, active...
	// CreatedAt is when the cloud created it; zero when the cloud does not
	// say (EC2 gives no creation time for Elastic IPs and interfaces).
	CreatedAt time.Time
	Tags      map[string]string
	// Type is a volume's type (gp3, io2...), empty for other kinds.
	Type string
	// SizeGiB is a volume's size in GiB, zero for other kinds.
	SizeGiB int
	// InUse says something still uses it: a volume or interface that is
	// attached (or not yet available), an associated Elastic IP, a spot
	// request whose instance is live. Only one not in use may be reaped.
	InUse bool
}
