// Package ec2fake is a fake of the EC2 Query API that runs inside the test
// process, for testing code that drives EC2 through the real aws-sdk-go-v2
// client.
//
// It speaks the wire protocol (form-encoded POST in, XML out, EC2's error
// envelope and HTTP statuses) for RunInstances, DescribeInstances,
// TerminateInstances, StopInstances, ModifyInstanceAttribute and CreateTags,
// and for what an instance leaves behind: CreateVolume, AttachVolume,
// DescribeVolumes, DeleteVolume; AllocateAddress, AssociateAddress,
// DescribeAddresses, ReleaseAddress; CreateNetworkInterface,
// AttachNetworkInterface, DescribeNetworkInterfaces, DeleteNetworkInterface;
// RequestSpotInstances, DescribeSpotInstanceRequests and
// CancelSpotInstanceRequests. It models the EC2 behaviour that teardown code
// gets wrong:
//
//   - One unknown id fails a whole TerminateInstances or StopInstances call
//     with InvalidInstanceID.NotFound naming every unknown id, and nothing
//     is done; so does one termination-protected instance
//     (OperationNotPermitted), and one instance StopInstances cannot stop
//     (IncorrectInstanceState).
//   - Throttling by token buckets (see [Limits] and [EC2Limits]): each
//     action has a request bucket, and TerminateInstances and StopInstances
//     also spend one resource token per instance. A short bucket answers
//     RequestLimitExceeded with HTTP 503.
//   - IAM refusals ([WithTagCondition]): a policy that allows stopping only
//     instances with an owner tag refuses a whole call for one instance
//     without it, with UnauthorizedOperation naming no instance.
//   - Eventual consistency ([WithPropagationDelay]): a freshly launched
//     instance is unknown to every call for a while, though it is running.
//   - DryRun=true on any action answers DryRunOperation (HTTP 412), or
//     UnauthorizedOperation where a tag condition would refuse the call,
//     and changes nothing.
//   - Dependents outlive their instance. Every instance has a primary
//     network interface, and one that RunInstances launched a root volume,
//     both deleted with it; DescribeInstances lists its block-device
//     mappings, interfaces (with an Elastic IP's association) and
//     SpotInstanceRequestId. A terminated instance's volumes stay in-use
//     (DeleteVolume: VolumeInUse) and its interfaces attached
//     (DeleteNetworkInterface: InvalidParameterValue, "currently in use";
//     ReleaseAddress of the address on it: InvalidIPAddress.InUse) for
//     [WithDetachDelay]; then those not deleted on termination are
//     available, and an interface keeps its Elastic IP. A persistent spot
//     request whose instance is terminated opens again and launches a
//     replacement after the same delay, unless it was cancelled first; a
//     one-time request closes. Unknown ids answer InvalidVolume.NotFound,
//     InvalidAllocationID.NotFound, InvalidNetworkInterfaceID.NotFound and
//     InvalidSpotInstanceRequestID.NotFound. DeleteVolume,
//     DeleteNetworkInterface and ReleaseAddress each have a bucket of 100
//     refilling 5/s ([Limits].DeleteCalls).
//   - Faults on demand: the next n calls of an action fail with a code
//     ([Server.Fail], [Server.FailWith]), a share of calls fail at random
//     ([Server.SetErrorRate]), answers are delayed ([Server.SetLatency]).
//
// Tests set the scene directly with [Server.Launch], [Server.Protect],
// [Server.AddVolume], [Server.AddAddress], [Server.AddNetworkInterface]
// and [Server.RequestSpot], and assert on [Server.Instances],
// [Server.Volumes], [Server.Addresses], [Server.NetworkInterfaces],
// [Server.SpotRequests], [Server.Calls] and [Server.Requests]
// (which records each call's Amz-Sdk-Request header, so a test can check
// that the SDK made one attempt per call).
//
// Wiring the SDK to it:
//
//	srv := ec2fake.New(ec2fake.WithLimits(ec2fake.EC2Limits()))
//	defer srv.Close()
//	client := ec2.New(ec2.Options{
//		Region:       "us-east-1",
//		BaseEndpoint: aws.String(srv.URL()),
//		HTTPClient:   srv.Client(),
//		Credentials:  credentials.NewStaticCredentialsProvider("id", "secret", ""),
//	})
//
// [New] listens on 127.0.0.1; [NewInProcess] does not listen at all, so it
// also works inside a testing/synctest bubble, where time is fake and a
// test of a 20-second backoff takes no time.
//
// The fake is deliberately small: one account and region, one zone and
// subnet ([DefaultZone], [DefaultSubnet]), no AMIs, snapshots or capacity, instances that reach running, stopped or terminated at
// once (the answer to the call that starts a transition still reports
// pending, stopping or shutting-down, as EC2's does), and terminated
// instances that stay visible for good.
package ec2fake
