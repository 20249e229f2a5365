package main

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The man page and --help describe the same program: every flag with its
// default, every command, annotation and exit status, both ways.

const manPage = "../docs/oci-keyring-hook.1.md"

// manSections splits the man page at its "# NAME" headings.
func manSections(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(manPage)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	var name string
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "# "); ok {
			name = h
			continue
		}
		sections[name] += line + "\n"
	}
	for _, want := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ANNOTATIONS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"} {
		if strings.TrimSpace(sections[want]) == "" {
			t.Errorf("%s has no %s section", manPage, want)
		}
	}
	return sections
}

// manEntries returns the terms of a section's definition list (lines that
// start with **term**) and the text under each.
func manEntries(section string) map[string]string {
	entries := map[string]string{}
	term := regexp.MustCompile(`^\*\*([^*]+)\*\*`)
	var cur []string
	for _, line := range strings.Split(section, "\n") {
		if m := term.FindStringSubmatch(line); m != nil {
			cur = nil
			for _, m := range regexp.MustCompile(`\*\*([^*]+)\*\*`).FindAllStringSubmatch(line, -1) {
				if !strings.HasPrefix(m[1], "--") || len(cur) == 0 {
					cur = append(cur, m[1])
				}
			}
			for _, c := range cur {
				entries[c] = ""
			}
			continue
		}
		for _, c := range cur {
			entries[c] += line + "\n"
		}
	}
	return entries
}

func helpText(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	if code := run([]string{"--help"}, strings.NewReader(""), &out, &out); code != exitOK {
		t.Fatalf("--help exited %d", code)
	}
	return out.String()
}

// helpBlock returns the indented lines after a "Title:" line of --help.
func helpBlock(t *testing.T, help, title string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(help, "\n"+title+"\n")
	if !ok {
		t.Fatalf("--help has no %q block", title)
	}
	var lines []string
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		lines = append(lines, l)
	}
	return lines
}

func TestManPageOptionsMatchFlags(t *testing.T) {
	documented := manEntries(manSections(t)["OPTIONS"])
	var o options
	fs := newFlagSet(&o, &bytes.Buffer{})
	fs.VisitAll(func(f *flag.Flag) {
		text, ok := documented["--"+f.Name]
		if !ok {
			t.Errorf("man page OPTIONS lacks --%s", f.Name)
			return
		}
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(text, "Default: `"+f.DefValue+"`") {
			t.Errorf("man page --%s does not give its default %q:\n%s", f.Name, f.DefValue, text)
		}
	})
	for name := range documented {
		if fs.Lookup(strings.TrimPrefix(name, "--")) == nil && name != "--help" {
			t.Errorf("man page OPTIONS documents %s, which is not a flag", name)
		}
	}
}

func TestManPageCommandsMatchHelp(t *testing.T) {
	commands := manEntries(manSections(t)["COMMANDS"])
	var fromHelp []string
	for _, l := range helpBlock(t, helpText(t), "Commands:") {
		if strings.HasPrefix(l, "   ") { // continuation
			continue
		}
		words, _, _ := strings.Cut(strings.TrimSpace(l), "  ")
		for _, w := range strings.Split(words, ", ") {
			fromHelp = append(fromHelp, strings.Fields(w)[0])
		}
	}
	var fromMan []string
	for name := range commands {
		fromMan = append(fromMan, name)
	}
	slices.Sort(fromHelp)
	slices.Sort(fromMan)
	if !slices.Equal(fromHelp, fromMan) || len(fromMan) != 4 {
		t.Errorf("commands in --help %q, in the man page %q; want the same four", fromHelp, fromMan)
	}
	// check's own flags are documented with it.
	var c checkOptions
	newCheckFlagSet(&c, &bytes.Buffer{}).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(commands["check"], "**--"+f.Name+"**") {
			t.Errorf("man page does not document check --%s", f.Name)
		}
	})
}

func TestManPageAnnotationsMatchHelp(t *testing.T) {
	re := regexp.MustCompile(`io\.oci-keyring-hook\.[a-z]+`)
	set := func(s string) []string {
		found := re.FindAllString(s, -1)
		slices.Sort(found)
		return slices.Compact(found)
	}
	help, man := set(helpText(t)), set(manSections(t)["ANNOTATIONS"])
	if !slices.Equal(help, man) || len(man) == 0 {
		t.Errorf("annotations in --help %q, in the man page %q", help, man)
	}
}

func TestManPageExitStatusMatchesHelp(t *testing.T) {
	var help []string
	for _, l := range helpBlock(t, helpText(t), "Exit status:") {
		if f := strings.Fields(l); len(f) > 0 {
			help = append(help, f[0])
		}
	}
	var man []string
	for code := range manEntries(manSections(t)["EXIT STATUS"]) {
		man = append(man, code)
	}
	slices.Sort(man)
	want := []string{"0", "1", "2"}
	if !slices.Equal(help, want) || !slices.Equal(man, want) {
		t.Errorf("exit statuses in --help %q, in the man page %q; want %q", help, man, want)
	}
}
