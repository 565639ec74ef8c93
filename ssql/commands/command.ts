// A command of the `ssql` CLI defined in its own file: ssql/cli.ts registers it by name (the
// file names the command, `registerCommand` adds it to the list `ssql --help` prints).
export interface Command {
  readonly name: string;
  /** One line for `ssql --help`. */
  readonly summary: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}
