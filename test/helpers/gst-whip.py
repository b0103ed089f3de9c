#!/usr/bin/python3
"""A GStreamer webrtcbin WHIP publisher for tests (run with the system python: it needs gi).

videotestsrc 1280x720@30 -> x264enc -> rtph264pay and audiotestsrc -> opusenc -> rtpopuspay
into webrtcbin; the offer is POSTed (WHIP, RFC 9725) once ICE gathering is complete; the
answer is set as the remote description. ICE gathers on 127.0.0.1 only.

Reports JSON lines on stdout, one object each with an "event" key:
  offer {sdp}, status {status, location, etag}, answer {sdp}, error {message, body?},
  ice-gathering-state / ice-connection-state / connection-state {state}, deleted {status},
  stopped.
Commands on stdin, one a line: "stop" (stop), "delete" (WHIP DELETE to Location, then stop).
SIGTERM/SIGINT stop too (with a DELETE first when --delete-on-term was given). End of stdin
(the parent went away) stops without a DELETE.
"""

import argparse
import ctypes
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version('Gst', '1.0')
gi.require_version('GstWebRTC', '1.0')
gi.require_version('GstSdp', '1.0')
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

out_lock = threading.Lock()


def emit(event, **fields):
    with out_lock:
        sys.stdout.write(json.dumps({'event': event, 't': time.time(), **fields}) + '\n')
        sys.stdout.flush()


def take_extra_ref(obj):
    """PyGObject drops one reference too many on objects webrtcbin hands out through
    properties (its "ice-agent", the agent's "agent"): without one more reference the
    agent is freed under webrtcbin and the process crashes (or logs g_object_unref
    criticals at exit). The pointer is taken from the wrapper's __gpointer__ capsule."""
    gobject = ctypes.CDLL('libgobject-2.0.so.0')
    gobject.g_object_ref.argtypes = [ctypes.c_void_p]
    gobject.g_object_ref.restype = ctypes.c_void_p
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    get_pointer.restype = ctypes.c_void_p
    gobject.g_object_ref(get_pointer(obj.__gpointer__, None))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--url', required=True, help='WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam1')
    ap.add_argument('--bundle-policy', choices=['max-bundle', 'max-compat', 'balanced', 'none'], default='max-bundle')
    ap.add_argument('--direction', choices=['sendonly', 'sendrecv'], default='sendonly', help="the transceivers' direction (webrtcbin's default is sendrecv)")
    ap.add_argument('--token', help='sent as Authorization: Bearer with the POST and the DELETE')
    ap.add_argument('--ice-address', default='127.0.0.1', help='the only local address ICE gathers on')
    ap.add_argument('--width', type=int, default=1280)
    ap.add_argument('--height', type=int, default=720)
    ap.add_argument('--fps', type=int, default=30)
    ap.add_argument('--kbps', type=int, default=2000)
    ap.add_argument('--no-audio', action='store_true')
    ap.add_argument('--no-video', action='store_true')
    ap.add_argument('--delete-on-term', action='store_true', help='send the WHIP DELETE on SIGTERM/SIGINT')
    ap.add_argument('--max-seconds', type=float, default=900, help='stop by itself after this long (an orphan ends)')
    args = ap.parse_args()

    Gst.init(None)
    loop = GLib.MainLoop()
    state = {'location': None, 'stopping': False}

    pipe = Gst.Pipeline.new('whip')
    wb = Gst.ElementFactory.make('webrtcbin', 'wb')
    wb.set_property('bundle-policy', {
        'none': GstWebRTC.WebRTCBundlePolicy.NONE,
        'balanced': GstWebRTC.WebRTCBundlePolicy.BALANCED,
        'max-compat': GstWebRTC.WebRTCBundlePolicy.MAX_COMPAT,
        'max-bundle': GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE,
    }[args.bundle_policy])
    pipe.add(wb)

    agent = wb.get_property('ice-agent')
    take_extra_ref(agent)
    # With a local address added, libnice gathers on that address only (not on eth0).
    if not agent.emit('add-local-ip-address', args.ice_address):
        emit('error', message=f'add-local-ip-address {args.ice_address} failed')
        sys.exit(2)

    chains = []
    if not args.no_video:
        chains.append(
            f'videotestsrc is-live=true pattern=smpte ! video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 '
            '! videoconvert ! queue max-size-buffers=2 leaky=downstream '
            f'! x264enc tune=zerolatency key-int-max={2 * args.fps} speed-preset=ultrafast bitrate={args.kbps} '
            '! video/x-h264,profile=constrained-baseline '
            '! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt=96 mtu=1200 '
            '! capsfilter caps="application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000"')
    if not args.no_audio:
        chains.append(
            'audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample '
            '! audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=64000 ! rtpopuspay pt=111 '
            '! capsfilter caps="application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"')
    for desc in chains:
        bin_ = Gst.parse_bin_from_description(desc, True)
        pipe.add(bin_)
        bin_.link(wb)  # a new sink_%u request pad each
        if args.direction == 'sendonly':
            # As GStreamer's own WHIP sinks do; webrtcbin's default is sendrecv.
            pad = bin_.get_static_pad('src').get_peer()
            pad.get_property('transceiver').set_property('direction', GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)

    def http(method, url, body=None, ctype=None):
        headers = {}
        if ctype:
            headers['Content-Type'] = ctype
        if args.token:
            headers['Authorization'] = f'Bearer {args.token}'
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return res.status, dict(res.headers), res.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode(errors='replace')

    def post_offer(offer_sdp):
        # Off the main loop: urllib blocks.
        try:
            status, headers, body = http('POST', args.url, offer_sdp.encode(), 'application/sdp')
        except Exception as e:  # noqa: BLE001
            emit('error', message=f'POST failed: {e}')
            GLib.idle_add(stop, False)
            return
        location = headers.get('Location') or headers.get('location')
        if location:
            location = urllib.parse.urljoin(args.url, location)
        emit('status', status=status, location=location, etag=headers.get('ETag') or headers.get('etag'))
        if status != 201:
            emit('error', message=f'WHIP POST answered {status}', body=body)
            GLib.idle_add(stop, False)
            return
        state['location'] = location
        emit('answer', sdp=body)
        GLib.idle_add(set_answer, body)

    def set_answer(text):
        res, msg = GstSdp.SDPMessage.new_from_text(text)
        if res != GstSdp.SDPResult.OK:
            emit('error', message='could not parse the answer')
            stop(False)
            return False
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        promise = Gst.Promise.new_with_change_func(lambda p: emit('remote-description-set'))
        wb.emit('set-remote-description', answer, promise)
        return False

    def on_gathering(*_):
        st = wb.get_property('ice-gathering-state')
        emit('ice-gathering-state', state=st.value_nick)
        if st == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not state.get('posted'):
            state['posted'] = True
            # webrtcbin puts the gathered candidates into its local description.
            sdp = wb.get_property('local-description').sdp.as_text()
            emit('offer', sdp=sdp)
            threading.Thread(target=post_offer, args=(sdp,), daemon=True).start()

    def on_offer(promise):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value('offer')
        wb.emit('set-local-description', offer, Gst.Promise.new())

    def on_negotiation_needed(_):
        if state.get('offered'):
            return
        state['offered'] = True
        wb.emit('create-offer', None, Gst.Promise.new_with_change_func(on_offer))

    wb.connect('on-negotiation-needed', on_negotiation_needed)
    wb.connect('notify::ice-gathering-state', on_gathering)
    wb.connect('notify::ice-connection-state', lambda *_: emit('ice-connection-state', state=wb.get_property('ice-connection-state').value_nick))
    wb.connect('notify::connection-state', lambda *_: emit('connection-state', state=wb.get_property('connection-state').value_nick))

    def stop(delete):
        if state['stopping']:
            return False
        state['stopping'] = True
        if delete and state['location']:
            try:
                status, _, _ = http('DELETE', state['location'])
            except Exception as e:  # noqa: BLE001
                status = None
                emit('error', message=f'DELETE failed: {e}')
            emit('deleted', status=status)
        pipe.set_state(Gst.State.NULL)
        emit('stopped')
        loop.quit()
        return False

    def on_bus(_, message):
        if message.type == Gst.MessageType.ERROR:
            err, dbg = message.parse_error()
            emit('error', message=f'{message.src.get_name()}: {err.message}', debug=dbg)
            stop(False)
        return True

    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect('message', on_bus)

    def on_stdin(source, condition):
        # Data and the hang-up can come together ("delete" and then the end): read first.
        line = sys.stdin.readline() if condition & GLib.IO_IN else ''
        if line == '':
            stop(False)
            return False
        cmd = line.strip()
        if cmd == 'delete':
            stop(True)
        elif cmd == 'stop':
            stop(False)
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, stop, args.delete_on_term)
    GLib.timeout_add(int(args.max_seconds * 1000), stop, False)

    if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        emit('error', message='pipeline would not start')
        sys.exit(1)
    loop.run()


if __name__ == '__main__':
    main()
