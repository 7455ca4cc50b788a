// compose-check loads Compose files the way `docker compose config` does, with the
// compose-go library that Docker Compose itself is built on: JSON-schema validation
// against the Compose Specification, interpolation (so ${VAR:?message} fails when VAR
// is unset or empty), normalisation and the consistency checks (depends_on, volumes,
// networks). It prints the resolved project as JSON, or the error and exits 1.
//
//	compose-check [-f FILE]... [--env-file FILE]... [--profile NAME]...
//
// -f defaults to docker-compose.yml in the working directory. --profile enables the
// services of a profile, as `docker compose --profile NAME config` does; without it only
// the services of no profile are in the project. Variables come from the
// environment and, as in Compose, from the .env file of the working directory, or from
// the --env-file files instead when given.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

type files []string

func (f *files) String() string     { return fmt.Sprint(*f) }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var paths, envFiles, profiles files
	flag.Var(&paths, "f", "Compose file (repeatable)")
	flag.Var(&envFiles, "env-file", "variables file, instead of ./.env (repeatable)")
	flag.Var(&profiles, "profile", "enable a profile's services (repeatable)")
	flag.Parse()
	if len(paths) == 0 {
		paths = files{"docker-compose.yml"}
	}
	opts, err := cli.NewProjectOptions(paths, cli.WithOsEnv, cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv, cli.WithConsistency(true), cli.WithProfiles(profiles))
	if err == nil {
		var out []byte
		project, lerr := opts.LoadProject(context.Background())
		if err = lerr; err == nil {
			if out, err = project.MarshalJSON(); err == nil {
				fmt.Println(string(out))
				return
			}
		}
	}
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
