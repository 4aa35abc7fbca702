import type { Child } from 'hono/jsx';

export type Section = 'overview' | 'jobs' | 'failures' | 'exposed' | 'image';

const sections: readonly [Exclude<Section, 'image'>, string, string][] = [
  ['overview', 'Overview', '/dashboard'],
  ['jobs', 'Live jobs', '/dashboard/jobs'],
  ['failures', 'Failures', '/dashboard/failures'],
  ['exposed', 'Still exposed', '/dashboard/exposed'],
];

/** Every page's frame: viewport for phones, the stylesheet, the navigation. */
export function Layout(props: { title: string; section: Section; scripts?: readonly string[]; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{`${props.title} · patchd`}</title>
        <link rel="stylesheet" href="/dashboard/assets/style.css" />
        {(props.scripts ?? []).map((src) => <script src={src} defer />)}
      </head>
      <body>
        <header>
          <a class="brand" href="/dashboard">patchd</a>
          <nav>
            {sections.map(([key, label, href]) => (
              <a href={href} aria-current={key === props.section ? 'page' : undefined}>{label}</a>
            ))}
          </nav>
        </header>
        <main>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

export function Status(props: { status: string }) {
  return <span class={`status status-${props.status}`}>{props.status}</span>;
}

/** An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC), in a <time> element. */
export function Time(props: { iso: string | undefined }) {
  if (!props.iso) return <span class="muted">–</span>;
  return <time datetime={props.iso} class="mono">{props.iso.replace('T', ' ').slice(0, 19)}</time>;
}
