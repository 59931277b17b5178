package awsec2

import (
	"slices"
	"strings"
)

// validID reports whether id has EC2's instance-id form: "i-" and 8 or 17
// lower-case hex digits.
func validID(id string) bool {
	hex, ok := strings.CutPrefix(id, "i-")
	return ok && (len(hex) == 8 || len(hex) == 17) && hexRun(hex) == len(hex)
}

// hexRun returns the length of the lower-case hex prefix of s.
func hexRun(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return i
		}
	}
	return len(s)
}

// idChar reports whether c can be part of an id-like token, so that an id
// is only recognised when it stands alone ("xi-0123abcd" is not one).
func idChar(c byte) bool {
	return c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// idsInMessage returns every distinct instance id an EC2 error message
// names, in order of appearance. It understands every wording EC2 uses,
// because it looks for the ids themselves:
//
//	The instance ID 'i-0123456789abcdef0' does not exist
//	The instance IDs 'i-0123456789abcdef0, i-0fedcba9876543210' do not exist
//	The instance 'i-0123456789abcdef0' may not be terminated. ...
//
// Every id it returns is a substring of msg.
func idsInMessage(msg string) []string {
	var ids []string
	for i := 0; i+2 <= len(msg); {
		j := strings.Index(msg[i:], "i-")
		if j < 0 {
			break
		}
		start := i + j
		i = start + 2
		if start > 0 && idChar(msg[start-1]) {
			continue
		}
		n := hexRun(msg[i:])
		end := i + n
		if (n != 8 && n != 17) || end < len(msg) && idChar(msg[end]) {
			continue
		}
		id := msg[start:end]
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		i = end
	}
	return ids
}
