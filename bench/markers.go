package bench

import (
	"errors"
	"os"
	"strings"
)

// writeSection puts body between the begin and end markers of the file at
// path, keeping everything outside them. A file without the markers gets
// them appended, after heading when it is not empty.
func writeSection(path, begin, end, heading, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	section := begin + "\n" + body + end
	s := string(old)
	i := strings.Index(s, begin)
	j := -1
	if i >= 0 {
		if k := strings.Index(s[i:], end); k >= 0 {
			j = i + k
		}
	}
	if heading != "" {
		section = heading + "\n\n" + section
	}
	switch {
	case i >= 0 && j > i:
		s = s[:i] + begin + "\n" + body + end + s[j+len(end):]
	case s == "":
		s = "# Performance\n\n" + section + "\n"
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
