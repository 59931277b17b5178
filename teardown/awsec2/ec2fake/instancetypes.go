package ec2fake

import (
	"fmt"
	"slices"
	"strings"
)

// instanceTypes are the instance types DescribeInstanceTypes knows: vCPUs
// and memory as EC2 reports them.
var instanceTypes = map[string]struct{ vcpus, memoryMiB int }{
	"t3.nano": {2, 512}, "t3.micro": {2, 1024}, "t3.small": {2, 2048}, "t3.medium": {2, 4096},
	"t3.large": {2, 8192}, "t3.xlarge": {4, 16384}, "t3.2xlarge": {8, 32768},
	"m5.large": {2, 8192}, "m5.xlarge": {4, 16384}, "m5.2xlarge": {8, 32768},
	"c5.large": {2, 4096}, "c5.xlarge": {4, 8192},
	"r5.large": {2, 16384},
}

type xmlInstanceType struct {
	InstanceType string `xml:"instanceType"`
	VCPUs        int    `xml:"vCpuInfo>defaultVCpus"`
	MemoryMiB    int    `xml:"memoryInfo>sizeInMiB"`
}

type describeInstanceTypesResponse struct {
	RequestID     string            `xml:"requestId"`
	InstanceTypes []xmlInstanceType `xml:"instanceTypeSet>item"`
}

// describeInstanceTypes answers for the types named by InstanceType.N, or
// for every type it knows; a type it does not know fails the whole call
// with InvalidInstanceType, as EC2 does.
func (s *Server) describeInstanceTypes(q query, reqID string) (any, *Fault) {
	names := q.list("InstanceType")
	if len(names) == 0 {
		for name := range instanceTypes {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := describeInstanceTypesResponse{RequestID: reqID}
	var unknown []string
	for _, name := range slices.Compact(names) {
		t, ok := instanceTypes[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		out.InstanceTypes = append(out.InstanceTypes, xmlInstanceType{InstanceType: name, VCPUs: t.vcpus, MemoryMiB: t.memoryMiB})
	}
	if len(unknown) > 0 {
		return nil, &Fault{Code: "InvalidInstanceType", Message: fmt.Sprintf("The following supplied instance types do not exist: [%s]", strings.Join(unknown, ", "))}
	}
	return out, nil
}
