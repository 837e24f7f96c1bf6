// A mistake the user can fix (bad config, missing file, busy port): printed as one clear line,
// never a stack trace. Everything else is a bug and keeps its stack.
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UserError';
  }
}
