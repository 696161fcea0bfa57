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

// parseStageConfig is stageConfig on the Dockerfile's text.
func parseStageConfig(text, target string, buildArgs map[string]string, base v1.Config) (v1.Config, error) {
	instructions, err := dockerfileInstructions(text)
	if err != nil {
		return v1.Config{}, err
	}
	p := &stageParser{buildArgs: buildArgs, base: base, globalArgs: map[string]string{}}
	for _, in := range instructions {
		if err := p.instruction(in); err != nil {
			return v1.Config{}, err
		}
	}
	for _, st := range p.stages {
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

// stageParser applies a Dockerfile's instructions in order.
type stageParser struct {
	buildArgs  map[string]string
	base       v1.Config
	globalArgs map[string]string // ARGs before the first FROM
	stages     []*dockerfileStage
	cur        *dockerfileStage
	vars       map[string]string // the current stage's ARGs
	cmdSet     bool              // CMD set in the current stage, not inherited
}

// lookup resolves $NAME in the current stage: its ENV, then its ARGs;
// before the first FROM, the global ARGs.
func (p *stageParser) lookup(name string) (string, bool) {
	if p.cur != nil {
		if v, ok := envValue(p.cur.config.Env, name); ok {
			return v, true
		}
		v, ok := p.vars[name]
		return v, ok
	}
	v, ok := p.globalArgs[name]
	return v, ok
}

// instruction applies one instruction to the current stage.
func (p *stageParser) instruction(in dockerfileInstruction) error {
	where := fmt.Sprintf("line %d: %s", in.line, in.keyword)
	if p.cur == nil && in.keyword != "FROM" && in.keyword != "ARG" {
		return fmt.Errorf("%s before the first FROM", where)
	}
	switch in.keyword {
	case "ARG":
		return p.arg(in.args, where)
	case "FROM":
		return p.from(in.args, where)
	case "ENV", "LABEL":
		return p.keyValues(in.keyword, in.args, where)
	case "USER", "WORKDIR":
		return p.userOrWorkdir(in.keyword, in.args, where)
	case "EXPOSE":
		return p.expose(in.args, where)
	case "ENTRYPOINT", "CMD":
		return p.exec(in.keyword, in.args, where)
	case "RUN", "COPY", "ADD":
		if strings.Contains(in.args, "<<") {
			return fmt.Errorf("%s: heredocs are not supported", where)
		}
	default:
		if p.cur.unsupported == "" {
			p.cur.unsupported = where
		}
	}
	return nil
}

// arg declares ARGs: a -build-arg value wins over the default; in a stage,
// a redeclared global ARG without either keeps the global value.
func (p *stageParser) arg(args, where string) error {
	words, err := shellWords(args, p.lookup)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, w := range words {
		name, def, hasDefault := strings.Cut(w, "=")
		v, ok := p.buildArgs[name]
		if !ok && hasDefault {
			v, ok = def, true
		}
		if !ok && p.cur != nil {
			v = p.globalArgs[name]
		}
		if p.cur == nil {
			p.globalArgs[name] = v
		} else {
			p.vars[name] = v
		}
	}
	return nil
}

// from starts a stage: FROM an earlier stage inherits its configuration,
// FROM an image starts from base.
func (p *stageParser) from(args, where string) error {
	// Only the global ARGs are in scope.
	words, err := shellWords(args, func(name string) (string, bool) {
		v, ok := p.globalArgs[name]
		return v, ok
	})
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--") })
	if len(words) != 1 && (len(words) != 3 || !strings.EqualFold(words[1], "AS")) {
		return fmt.Errorf("%s: want FROM IMAGE [AS NAME]", where)
	}
	st := &dockerfileStage{config: copyConfig(p.base)}
	if len(words) == 3 {
		st.name = words[2]
	}
	for _, parent := range p.stages {
		if parent.name != "" && parent.name == words[0] {
			st.config = copyConfig(parent.config)
			st.unsupported = parent.unsupported
		}
	}
	p.stages = append(p.stages, st)
	p.cur, p.vars, p.cmdSet = st, map[string]string{}, false
	return nil
}

// keyValues applies ENV or LABEL KEY=VALUE pairs.
func (p *stageParser) keyValues(keyword, args, where string) error {
	pairs, err := keyValueWords(args, p.lookup)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	c := &p.cur.config
	for _, kv := range pairs {
		if keyword == "ENV" {
			c.Env = setEnv(c.Env, kv[0], kv[1])
		} else {
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			c.Labels[kv[0]] = kv[1]
		}
	}
	return nil
}

// userOrWorkdir applies USER, or WORKDIR relative to the current one.
func (p *stageParser) userOrWorkdir(keyword, args, where string) error {
	words, err := shellWords(args, p.lookup)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if len(words) != 1 {
		return fmt.Errorf("%s: want one argument, have %d", where, len(words))
	}
	c := &p.cur.config
	if keyword == "USER" {
		c.User = words[0]
	} else {
		c.WorkingDir = path.Join("/", c.WorkingDir, words[0])
		if path.IsAbs(words[0]) {
			c.WorkingDir = path.Clean(words[0])
		}
	}
	return nil
}

// expose adds ports, tcp unless a protocol is given.
func (p *stageParser) expose(args, where string) error {
	words, err := shellWords(args, p.lookup)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	c := &p.cur.config
	for _, port := range words {
		if !strings.Contains(port, "/") {
			port += "/tcp"
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[port] = struct{}{}
	}
	return nil
}

// exec applies ENTRYPOINT or CMD in the JSON form.
func (p *stageParser) exec(keyword, args, where string) error {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		return fmt.Errorf("%s: only the JSON form [\"...\"] is supported: %w", where, err)
	}
	if keyword == "CMD" {
		p.cur.config.Cmd, p.cmdSet = argv, true
		return nil
	}
	p.cur.config.Entrypoint = argv
	// Docker: a new ENTRYPOINT drops the CMD of the base image.
	if !p.cmdSet {
		p.cur.config.Cmd = nil
	}
	return nil
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
