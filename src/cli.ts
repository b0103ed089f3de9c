#!/usr/bin/env node
import { ConfigError, loadConfig } from './config/load.js';
import { Gateway } from './gateway.js';
import { createLogger } from './log.js';
import { checkFfmpeg, FfmpegMissing } from './pipelines/ffmpeg-check.js';

// Entry point: configuration (defaults <- file <- env <- flags), ffmpeg check, gateway,
// and a clean stop on SIGINT/SIGTERM (every ffmpeg finishes its files, exit code 0).

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      'usage: webrtc-rtp-gateway [--config file.yaml|json] [--host H] [--port P] [--data-dir DIR] [--ffmpeg PATH] [--ice-addresses IP,IP] [--log-level L]\n' +
        'Environment variables override the file, flags override both. See README.md and config.example.yaml.\n',
    );
    return;
  }
  let config;
  try {
    config = loadConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.log.level);
  try {
    const version = await checkFfmpeg(config.ffmpeg.path);
    log.info({ event: 'ffmpeg', version }, `using ffmpeg ${version}`);
  } catch (e) {
    if (e instanceof FfmpegMissing) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, log);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(2);
    }
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? `port ${config.http.port} is already in use (set PORT or --port)` : err.message;
    process.stderr.write(`error: cannot start the HTTP server: ${why}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      for (const pid of gateway.registry.ffmpegPids()) process.kill(pid, 'SIGKILL');
      process.exit(1);
    }
    stopping = true;
    log.info({ event: 'shutdown', signal }, 'stopping: finishing ffmpeg outputs');
    gateway.stop().then(
      () => {
        log.info({ event: 'stopped' }, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

void main();
