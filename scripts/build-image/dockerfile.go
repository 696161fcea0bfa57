package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The image configuration of a Dockerfile stage, read from the Dockerfile
// itself so that the rootless build cannot drift from it. A subset of the
// syntax, enough for this repository's Dockerfile; anything else that
// would change the configuration is an error rather than ignored:
//   - line continuations with \, comment lines (also inside continuations);
//   - ARG (global ones, redeclared in a stage), with -build-arg values;
//   - FROM IMAGE [AS NAME]: a stage FROM an earlier stage inherits its
//     configuration, FROM an image starts from the -base- configuration;
//   - ENV and LABEL in the KEY=VALUE form, with quotes and $VAR, ${VAR},
//     ${VAR:-word}, ${VAR:+word};
//   - USER, WORKDIR, EXPOSE; ENTRYPOINT and CMD in the JSON (exec) form;
//   - RUN, COPY, ADD: skipped, they are the root filesystem's business.

// dockerfileStage is a stage's configuration as its instructions leave it.
type dockerfileStage struct {
	name   string
	config v1.Config
	// unsupported is the first instruction of this stage or its parents
	// that changes the configuration in a way not implemented here.
	unsupported string
}

// stageConfig returns the configuration of stage target of the Dockerfile
// at path, starting from base for stages FROM an image.
func stageConfig(path, target string, buildArgs map[string]string, base v1.Config) (v1.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return v1.Config{}, fmt.Errorf("dockerfile: %w", err)
	}
	cfg, err := parseStageConfig(string(data), target, buildArgs, base)
	if err != nil {
		return v1.Config{}, fmt.Errorf("dockerfile %s: %w", path, err)
	}
	return cfg, nil
}

func parseStageConfig(text, target string, buildArgs map[string]string, base v1.Config) (v1.Config, error) {
	instructions, err := dockerfileInstructions(text)
	if err != nil {
		return v1.Config{}, err
	}
	globalArgs := map[string]string{}
	var stages []*dockerfileStage
	var cur *dockerfileStage
	var vars map[string]string // the current stage's ARGs
	cmdSet := false            // CMD set in the current stage, not inherited
	for _, in := range instructions {
		lookup := func(name string) (string, bool) {
			if cur != nil {
				if v, ok := envValue(cur.config.Env, name); ok {
					return v, true
				}
				v, ok := vars[name]
				return v, ok
			}
			v, ok := globalArgs[name]
			return v, ok
		}
		where := fmt.Sprintf("line %d: %s", in.line, in.keyword)
		if cur == nil && in.keyword != "FROM" && in.keyword != "ARG" {
			return v1.Config{}, fmt.Errorf("%s before the first FROM", where)
		}
		switch in.keyword {
		case "ARG":
			words, err := shellWords(in.args, lookup)
			if err != nil {
				return v1.Config{}, fmt.Errorf("%s: %w", where, err)
			}
			for _, w := range words {
				name, def, hasDefault := strings.Cut(w, "=")
				v, ok := buildArgs[name]
				if !ok && hasDefault {
					v, ok = def, true
				}
				if !ok && cur != nil {
					v = globalArgs[name]
				}
				if cur == nil {
					globalArgs[name] = v
				} else {
					vars[name] = v
				}
			}
		case "FROM":
			// Only the global ARGs are in scope.
			words, err := shellWords(in.args, func(name string) (string, bool) {
				v, ok := globalArgs[name]
				return v, ok
			})
			if err != nil {
				return v1.Config{}, fmt.Errorf("%s: %w", where, err)
			}
			words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--") })
			if len(words) != 1 && (len(words) != 3 || !strings.EqualFold(words[1], "AS")) {
				return v1.Config{}, fmt.Errorf("%s: want FROM IMAGE [AS NAME]", where)
			}
			st := &dockerfileStage{config: copyConfig(base)}
			if len(words) == 3 {
				st.name = words[2]
			}
			for _, parent := range stages {
				if parent.name != "" && parent.name == words[0] {
					st.config = copyConfig(parent.config)
					st.unsupported = parent.unsupported
				}
			}
			stages = append(stages, st)
			cur, vars, cmdSet = st, map[string]string{}, false
		case "ENV", "LABEL":
			pairs, err := keyValueWords(in.args, lookup)
			if err != nil {
				return v1.Config{}, fmt.Errorf("%s: %w", where, err)
			}
			for _, kv := range pairs {
				if in.keyword == "ENV" {
					cur.config.Env = setEnv(cur.config.Env, kv[0], kv[1])
				} else {
					if cur.config.Labels == nil {
						cur.config.Labels = map[string]string{}
					}
					cur.config.Labels[kv[0]] = kv[1]
				}
			}
		case "USER", "WORKDIR":
			words, err := shellWords(in.args, lookup)
			if err != nil {
				return v1.Config{}, fmt.Errorf("%s: %w", where, err)
			}
			if len(words) != 1 {
				return v1.Config{}, fmt.Errorf("%s: want one argument, have %d", where, len(words))
			}
			if in.keyword == "USER" {
				cur.config.User = words[0]
			} else {
				cur.config.WorkingDir = path.Join("/", cur.config.WorkingDir, words[0])
				if path.IsAbs(words[0]) {
					cur.config.WorkingDir = path.Clean(words[0])
				}
			}
		case "EXPOSE":
			words, err := shellWords(in.args, lookup)
			if err != nil {
				return v1.Config{}, fmt.Errorf("%s: %w", where, err)
			}
			for _, p := range words {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				if cur.config.ExposedPorts == nil {
					cur.config.ExposedPorts = map[string]struct{}{}
				}
				cur.config.ExposedPorts[p] = struct{}{}
			}
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(in.args), &argv); err != nil {
				return v1.Config{}, fmt.Errorf("%s: only the JSON form [\"...\"] is supported: %w", where, err)
			}
			if in.keyword == "CMD" {
				cur.config.Cmd, cmdSet = argv, true
			} else {
				cur.config.Entrypoint = argv
				// Docker: a new ENTRYPOINT drops the CMD of the base image.
				if !cmdSet {
					cur.config.Cmd = nil
				}
			}
		case "RUN", "COPY", "ADD":
			if strings.Contains(in.args, "<<") {
				return v1.Config{}, fmt.Errorf("%s: heredocs are not supported", where)
			}
		default:
			if cur.unsupported == "" {
				cur.unsupported = where
			}
		}
	}
	for _, st := range stages {
		if st.name != target {
			continue
		}
		if st.unsupported != "" {
			return v1.Config{}, fmt.Errorf("stage %s: %s is not supported by build-image", target, st.unsupported)
		}
		return st.config, nil
	}
	return v1.Config{}, fmt.Errorf("no stage %q", target)
}

// dockerfileInstruction is one logical line: continuations joined.
type dockerfileInstruction struct {
	line    int    // of its first physical line
	keyword string // upper case
	args    string
}

func dockerfileInstructions(text string) ([]dockerfileInstruction, error) {
	var out []dockerfileInstruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		n++
		raw := sc.Text()
		trimmed := strings.TrimSpace(raw)
		if n <= 5 && strings.HasPrefix(strings.ReplaceAll(trimmed, " ", ""), "#escape=") {
			return nil, fmt.Errorf("line %d: the escape directive is not supported", n)
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // also inside a continuation, as Docker does
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRightFunc(raw, unicode.IsSpace), `\`); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(raw)
		keyword, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerfileInstruction{line: start, keyword: strings.ToUpper(keyword), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() != 0 {
		return nil, fmt.Errorf("line %d: a continuation at the end of the file", start)
	}
	return out, nil
}

// keyValueWords parses ENV and LABEL arguments: KEY=VALUE words.
func keyValueWords(s string, lookup func(string) (string, bool)) ([][2]string, error) {
	words, err := shellWords(s, lookup)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("no KEY=VALUE")
	}
	pairs := make([][2]string, 0, len(words))
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: only the KEY=VALUE form is supported", w)
		}
		pairs = append(pairs, [2]string{k, v})
	}
	return pairs, nil
}

// shellWords splits s into words as Docker does for ENV, LABEL, USER and
// the like: on unquoted white space, quotes removed, backslash escapes
// outside single quotes, variables expanded outside single quotes.
func shellWords(s string, lookup func(string) (string, bool)) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			continue
		case c == '\'':
			j := slices.Index(rs[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			w.WriteString(string(rs[i+1 : i+1+j]))
			i += j + 1
		case c == '"':
			i++
			for ; i < len(rs) && rs[i] != '"'; i++ {
				switch {
				case rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$", rs[i+1]):
					i++
					w.WriteRune(rs[i])
				case rs[i] == '$':
					v, next, err := expandAt(rs, i, lookup)
					if err != nil {
						return nil, err
					}
					w.WriteString(v)
					i = next - 1
				default:
					w.WriteRune(rs[i])
				}
			}
			if i >= len(rs) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
		case c == '\\':
			if i+1 < len(rs) {
				i++
				w.WriteRune(rs[i])
			}
		case c == '$':
			v, next, err := expandAt(rs, i, lookup)
			if err != nil {
				return nil, err
			}
			w.WriteString(v)
			i = next - 1
		default:
			w.WriteRune(c)
		}
		inWord = true
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// expandAt expands the variable reference at rs[i] == '$' and returns its
// value and the index after it. A $ not followed by a name is itself.
func expandAt(rs []rune, i int, lookup func(string) (string, bool)) (string, int, error) {
	isName := func(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
	if i+1 < len(rs) && rs[i+1] == '{' {
		j := slices.Index(rs[i+2:], '}')
		if j < 0 {
			return "", 0, fmt.Errorf("unterminated ${ in %q", string(rs))
		}
		expr := string(rs[i+2 : i+2+j])
		next := i + 2 + j + 1
		name, word, op := expr, "", ""
		if k := strings.Index(expr, ":"); k >= 0 {
			name, op, word = expr[:k], expr[k:min(k+2, len(expr))], expr[min(k+2, len(expr)):]
		}
		if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isName(r) }) >= 0 {
			return "", 0, fmt.Errorf("bad substitution ${%s}", expr)
		}
		v, ok := lookup(name)
		switch op {
		case "":
			return v, next, nil
		case ":-", ":+":
			words, err := shellWords(word, lookup)
			if err != nil {
				return "", 0, err
			}
			alt, unset := strings.Join(words, " "), !ok || v == ""
			switch {
			case op == ":-" && unset:
				return alt, next, nil
			case op == ":-":
				return v, next, nil
			case unset:
				return "", next, nil
			default:
				return alt, next, nil
			}
		default:
			return "", 0, fmt.Errorf("substitution ${%s} is not supported", expr)
		}
	}
	j := i + 1
	for j < len(rs) && isName(rs[j]) {
		j++
	}
	if j == i+1 {
		return "$", j, nil
	}
	v, _ := lookup(string(rs[i+1 : j]))
	return v, j, nil
}

func envValue(env []string, name string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// setEnv replaces NAME in env in place, or appends it, as Docker does.
func setEnv(env []string, name, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			env[i] = name + "=" + value
			return env
		}
	}
	return append(env, name+"="+value)
}

// copyConfig copies the fields a stage changes, so stages share nothing.
func copyConfig(c v1.Config) v1.Config {
	c.Env = slices.Clone(c.Env)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Cmd = slices.Clone(c.Cmd)
	c.Labels = maps.Clone(c.Labels)
	c.ExposedPorts = maps.Clone(c.ExposedPorts)
	return c
}
