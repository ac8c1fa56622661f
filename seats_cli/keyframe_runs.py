"""Decode only the video packets that a set of sampled frames needs (seats_cli.media, for long clips).

With a frame count in the header the sampled frames are known before decoding. When they are sparse (2 fps of a
25 fps clip keeps one frame in 12), the media module lists the video packets while it demuxes the audio; then
``plan_runs`` turns the wanted frames into runs of packets, each from the keyframe before a wanted frame up to it,
and ``decode_runs`` decodes just those runs — seeking over long gaps where the demuxer has an index, and skipping
H.264 pictures nothing is predicted from (``h264_droppable``). Anything that disagrees with the packet list makes
``decode_runs`` return False, and the caller decodes every frame instead.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Callable

SPARSE = 4  # decode runs only when a clip gives at most one sampled frame in this many
_SEEK_GAP = 8  # seek over a gap of at least this many packets; read through (without decoding) a shorter one
_SEEKABLE = ("mov", "mp4", "matroska", "webm")  # demuxers with an index: a seek lands on the keyframe asked for


def plan_runs(pts: list, keyframes: list[bool], wanted: list[int]) -> list[tuple[int, int, tuple[int, ...]]] | None:
    """The video packets to decode to get the frames `wanted` (display order = pts order): runs
    ``(first, last, frames)`` of packet positions in file order, each from a keyframe to the last packet a wanted
    frame needs, with the wanted frames each run gives; overlapping or touching runs are merged. A frame needs
    the keyframe with the latest pts not after its own. None when the packets cannot say it: a missing or
    repeated pts, keyframes out of pts order, no keyframe before a wanted frame, a wanted frame past the packets."""
    n = len(pts)
    if n == 0 or None in pts or len(set(pts)) != n or any(not 0 <= d < n for d in wanted):
        return None
    order = sorted(range(n), key=pts.__getitem__)  # display index -> packet position
    keys = [i for i in range(n) if keyframes[i]]
    key_pts = [pts[i] for i in keys]
    if not keys or key_pts != sorted(key_pts):
        return None
    runs: list[list] = []
    for d in sorted(set(wanted)):
        i = order[d]
        k = bisect.bisect_right(key_pts, pts[i]) - 1
        if k < 0 or keys[k] > i:
            return None
        if runs and keys[k] <= runs[-1][1] + 1:
            runs[-1][1] = max(runs[-1][1], i)
            runs[-1][2].append(d)
        else:
            runs.append([keys[k], i, [d]])
    return [(first, last, tuple(frames)) for first, last, frames in runs]


def decode_runs(p: Path, index: int, listed, runs, sampler) -> bool:  # sampler: media._FrameSampler
    """Decode only the packet runs of `plan_runs` (video stream `index` of `p`, opened afresh) into `sampler`,
    seeking over the gaps where the demuxer has an index, else reading through them. False when the file does not
    behave as its packet list says (the caller then decodes every frame)."""
    import av

    position = {pk[0]: i for i, pk in enumerate(listed)}  # pts -> position in file order
    display = {t: d for d, t in enumerate(sorted(position))}  # pts -> display index
    with av.open(str(p), mode="r", metadata_errors="ignore") as container:
        vstream = container.streams[index]
        vstream.thread_type = "AUTO"
        seekable = bool(set(str(container.format.name).split(",")) & set(_SEEKABLE))
        droppable = h264_droppable(vstream.codec_context)
        packets, at, last_kept = container.demux(vstream), -1, -1
        for first, last, frames in runs:
            wanted = set(frames)
            vstream.codec_context.flush_buffers()
            if seekable and first - at > _SEEK_GAP:
                ts = [t for t in listed[first][:2] if t is not None]
                container.seek(min(ts), stream=vstream, backward=True, any_frame=False)
                packets = container.demux(vstream)
            expect = None  # position of the next packet, once the run has started
            while True:
                packet = next(packets, None)
                if packet is None:
                    return False
                if packet.size == 0:
                    continue
                at = position.get(packet.pts)
                if at is None or (expect is not None and at != expect) or (expect is None and at > first):
                    return False
                if at < first:
                    continue
                expect = at + 1
                if at < last and droppable is not None and display[packet.pts] not in wanted and droppable(packet):
                    continue  # a picture nothing is predicted from, and not a sampled frame: not decoded
                try:
                    frames = list(vstream.decode(packet)) + (list(vstream.decode(None)) if at >= last else [])
                except av.error.FFmpegError:  # a damaged packet: the caller decodes every frame, skipping it
                    return False
                for frame in frames:
                    sampler.decoded += 1
                    d = display.get(frame.pts)
                    if d is None:
                        return False
                    if d in wanted:
                        if d <= last_kept:
                            return False
                        sampler.add_at(frame, d)
                        last_kept = d
                if at >= last:
                    break
    return len(sampler.kept) == len(sampler.wanted)


def h264_droppable(ctx) -> Callable[[object], bool] | None:
    """For H.264 with length-prefixed NAL units (MP4, MOV, MKV): a test that a packet holds only non-reference
    pictures (every slice's nal_ref_idc is 0: no other picture is predicted from it, and it changes no decoder
    state other pictures use), so that skipping it leaves every other frame as it was. None for other codecs."""
    extra = ctx.extradata
    if ctx.name != "h264" or not extra or len(extra) < 7 or extra[0] != 1:  # avcC (version 1), not Annex B
        return None
    size = (extra[4] & 3) + 1

    def droppable(packet) -> bool:
        data, i, slices = memoryview(packet), 0, 0
        while i + size < len(data):
            header = data[i + size]
            kind = header & 0x1F
            if kind in (14, 20, 21) or (1 <= kind <= 5 and header & 0x60):  # SVC/MVC, or a reference slice
                return False
            slices += 1 <= kind <= 5
            i += size + int.from_bytes(data[i:i + size], "big")
        return slices > 0

    return droppable
