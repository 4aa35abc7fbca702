import { field, parseParagraphs } from '../../../distro/deb/control.js';

/** Answers recorded in the image's debconf database (var/cache/debconf/config.dat), by question name. */
export async function readDebconfAnswers(root: { readFile(path: string): Promise<Buffer | undefined> }): Promise<Map<string, string>> {
  const text = (await root.readFile('var/cache/debconf/config.dat'))?.toString('utf8') ?? '';
  const answers = new Map<string, string>();
  for (const p of parseParagraphs(text)) {
    const name = field(p, 'Name');
    const value = field(p, 'Value');
    if (name && value !== undefined) answers.set(name, value);
  }
  return answers;
}
