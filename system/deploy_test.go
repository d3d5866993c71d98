package system

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"smartcopy/workflows"
)

// The deployment files are checked by docker-compose config (make test)
// for syntax; these check that they agree with the code: the environment
// they set is what LoadConfig reads, the metrics port is the one published,
// the search attributes are the workflows', and the README documents every
// variable.

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// composeEnv is the x-smartcopy-env block of docker-compose.yml: the
// environment of the worker and the migrate service.
func composeEnv(t *testing.T) map[string]string {
	t.Helper()
	compose := readRepoFile(t, "docker-compose.yml")
	start := strings.Index(compose, "x-smartcopy-env: &smartcopy-env\n")
	if start < 0 {
		t.Fatal("docker-compose.yml has no x-smartcopy-env block")
	}
	env := map[string]string{}
	for _, line := range strings.Split(compose[start:], "\n")[1:] {
		if line == "" || !strings.HasPrefix(line, "  ") {
			break
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("docker-compose.yml: %q in x-smartcopy-env is not NAME: value", line)
		}
		env[name] = strings.Trim(strings.TrimSpace(value), `"`)
	}
	return env
}

func TestComposeEnvironmentIsWhatTheCodeReads(t *testing.T) {
	known := map[string]bool{}
	for _, v := range Variables {
		known[v.Name] = true
	}
	env := composeEnv(t)
	for _, name := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DATABASE_URL", "METRICS_ADDR"} {
		if env[name] == "" {
			t.Errorf("docker-compose.yml does not set %s", name)
		}
	}
	for name := range env {
		if !known[name] {
			t.Errorf("docker-compose.yml sets %s, which smartcopy does not read (system.Variables)", name)
		}
	}
	if !strings.HasPrefix(env["TEMPORAL_ADDRESS"], "temporal:") || !strings.Contains(env["DATABASE_URL"], "@postgresql:") {
		t.Errorf("TEMPORAL_ADDRESS and DATABASE_URL must name the compose services temporal and postgresql: %v", env)
	}

	// The metrics port: set, published by the worker service, exposed by
	// the image.
	_, port, ok := strings.Cut(env["METRICS_ADDR"], ":")
	if !ok || port == "" {
		t.Fatalf("METRICS_ADDR %q has no port", env["METRICS_ADDR"])
	}
	compose := readRepoFile(t, "docker-compose.yml")
	worker := compose[strings.Index(compose, "\n  worker:\n"):]
	if !strings.Contains(worker, `"`+port+":"+port+`"`) {
		t.Errorf("the worker service does not publish the metrics port %s", port)
	}
	if !regexp.MustCompile(`(?m)^EXPOSE\s+` + port + `$`).MatchString(readRepoFile(t, "Dockerfile")) {
		t.Errorf("Dockerfile does not EXPOSE the metrics port %s", port)
	}
}

func TestComposeRegistersTheSearchAttributes(t *testing.T) {
	setup := readRepoFile(t, "compose/temporal-setup.sh")
	for _, name := range workflows.SearchAttributeNames {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(setup) {
			t.Errorf("compose/temporal-setup.sh does not register search attribute %s", name)
		}
	}
}

func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme := readRepoFile(t, "README.md")
	for _, v := range Variables {
		if !strings.Contains(readme, "`"+v.Name+"`") {
			t.Errorf("README.md does not document %s (%s)", v.Name, v.Meaning)
		}
	}
}
