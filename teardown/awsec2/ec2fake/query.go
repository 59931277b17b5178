package ec2fake

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// query reads EC2 Query-protocol parameters, whose lists are flattened as
// Name.1, Name.2, ... (and Name.1.Sub.1 for nested ones).
type query url.Values

func (q query) get(key string) string { return url.Values(q).Get(key) }

func (q query) has(key string) bool {
	_, ok := q[key]
	return ok
}

// indexes returns, in order, the N of every key "prefix.N" or
// "prefix.N.anything".
func (q query) indexes(prefix string) []int {
	seen := map[int]bool{}
	for k := range q {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(n); err == nil && i > 0 {
			seen[i] = true
		}
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// list returns the values of prefix.1, prefix.2, ... in index order.
func (q query) list(prefix string) []string {
	var out []string
	for _, i := range q.indexes(prefix) {
		if k := prefix + "." + strconv.Itoa(i); q.has(k) {
			out = append(out, q.get(k))
		}
	}
	return out
}

// tags returns the tags under prefix (prefix.N.Key, prefix.N.Value).
func (q query) tags(prefix string) []tag {
	var out []tag
	for _, i := range q.indexes(prefix) {
		p := prefix + "." + strconv.Itoa(i)
		out = append(out, tag{Key: q.get(p + ".Key"), Value: q.get(p + ".Value")})
	}
	return out
}

type filter struct {
	name   string
	values []string
}

func (q query) filters() []filter {
	var out []filter
	for _, i := range q.indexes("Filter") {
		p := "Filter." + strconv.Itoa(i)
		out = append(out, filter{name: q.get(p + ".Name"), values: q.list(p + ".Value")})
	}
	return out
}

// namedIDs returns the instance ids a request names, for the request log
// and for fault messages.
func (q query) namedIDs(action string) []string {
	switch action {
	case "CreateTags":
		return q.list("ResourceId")
	case "ModifyInstanceAttribute":
		if id := q.get("InstanceId"); id != "" {
			return []string{id}
		}
		return nil
	default:
		return q.list("InstanceId")
	}
}

// unique returns ids without repeats, first occurrence kept.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// match reports whether s matches an EC2 filter value, in which * matches
// any run of characters and ? any one character.
func match(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	// Iterative wildcard match with one backtrack point.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
