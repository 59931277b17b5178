package awsec2

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestIDsInMessage(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want []string
	}{
		{"The instance ID 'i-0123456789abcdef0' does not exist", []string{"i-0123456789abcdef0"}},
		{"The instance IDs 'i-0123456789abcdef0, i-0fedcba9876543210' do not exist", []string{"i-0123456789abcdef0", "i-0fedcba9876543210"}},
		{"The instance IDs 'i-0123abcd, i-0123456789abcdef0, i-0123abcd' do not exist", []string{"i-0123abcd", "i-0123456789abcdef0"}},
		{"The instance 'i-0123456789abcdef0' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", []string{"i-0123456789abcdef0"}},
		{"This instance 'i-0123abcd' is not in a state from which it can be stopped.", []string{"i-0123abcd"}},
		{"i-0123abcd", []string{"i-0123abcd"}},
		{"Some instances do not exist", nil},
		{"", nil},
		{"The instance ID 'i-0123abc' does not exist", nil},            // 7 digits
		{"The instance ID 'i-0123456789abcdef01' does not exist", nil}, // 18 digits
		{"The instance ID 'i-0123456789ABCDEF0' does not exist", nil},  // upper case
		{"The instance ID 'xi-0123abcd' does not exist", nil},          // part of a longer word
		{"The instance ID 'i-0123abcdz' does not exist", nil},          // runs on
		{"The instance ID 'i-0123abcd-x' does not exist", nil},         // runs on
		{"The instance ID 'ami-0123abcd' does not exist", nil},         // another resource
		{"i-i-0123abcd", nil},                                          // 'i-' inside a token
		{"ids: i-0123abcd,i-0123abce;i-0123abcf", []string{"i-0123abcd", "i-0123abce", "i-0123abcf"}},
	} {
		if got := idsInMessage(c.msg); !slices.Equal(got, c.want) {
			t.Errorf("idsInMessage(%q) = %q, want %q", c.msg, got, c.want)
		}
	}
}

// FuzzParseNotFound checks that the message parser never panics and never
// returns an id the message does not contain, and that it finds every id
// in EC2's own wordings and wherever else it stands alone.
func FuzzParseNotFound(f *testing.F) {
	f.Add("The instance ID 'i-0123456789abcdef0' does not exist", uint64(0x123456789abcdef0), uint64(0x0123abcd))
	f.Add("The instance IDs 'i-0123456789abcdef0, i-0fedcba9876543210' do not exist", uint64(0xfedcba9876543210), uint64(1))
	f.Fuzz(func(t *testing.T, msg string, x, y uint64) {
		ids := idsInMessage(msg)
		for i, id := range ids {
			if !validID(id) || !strings.Contains(msg, id) || slices.Contains(ids[:i], id) {
				t.Fatalf("idsInMessage(%q) returned %q: not a distinct id found in the message", msg, id)
			}
		}
		long, short := fmt.Sprintf("i-%017x", x), fmt.Sprintf("i-%08x", uint32(y))
		single := "The instance ID '" + long + "' does not exist"
		plural := "The instance IDs '" + long + ", " + short + "' do not exist"
		if got := idsInMessage(single); !slices.Equal(got, []string{long}) {
			t.Fatalf("idsInMessage(%q) = %q", single, got)
		}
		if got := idsInMessage(plural); !slices.Equal(got, []string{long, short}) {
			t.Fatalf("idsInMessage(%q) = %q", plural, got)
		}
		if got := idsInMessage(msg + " '" + short + "'"); !slices.Contains(got, short) {
			t.Fatalf("idsInMessage missed %s quoted at the end of %q: %q", short, msg, got)
		}
	})
}
