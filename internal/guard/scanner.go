package guard

import (
	"strings"
)

// parseScanners reads the scanner list format: one fragment per line,
// # comments, blank lines ignored; fragments are compared lower-case.
func parseScanners(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.ToLower(line))
	}
	return out
}

func matchScanner(list []string, ua string) string {
	ua = strings.ToLower(ua)
	for _, f := range list {
		if strings.Contains(ua, f) {
			return f
		}
	}
	return ""
}
