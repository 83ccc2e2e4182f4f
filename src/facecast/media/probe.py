"""What a written MP4 holds, for tests and checks.

Public API
----------
- ``probe_mp4(path) -> dict``: codecs, sizes, rates, durations and frame/sample counts.
"""

from __future__ import annotations

from pathlib import Path

import av

__all__ = ["probe_mp4"]


def probe_mp4(path: str | Path) -> dict:
    """Facts about a written file (reads every packet; decodes the audio to count samples).

    Keys: format, duration (s, container); video_codec, pix_fmt, width, height, fps (average
    rate), num_frames (packets), video_duration (s, from frame timestamps: last pts + one frame
    - first pts), colorspace; audio_codec, audio_rate, audio_channels, audio_duration (s, the
    track's edit-list duration: what players play), audio_samples (decoded by FFmpeg: priming
    removed, but the last AAC frame is not trimmed, so up to 1023 more than the duration) --
    audio keys are None without an audio track.
    """
    info: dict = dict.fromkeys(
        ["video_codec", "pix_fmt", "width", "height", "fps", "num_frames", "video_duration", "colorspace",
         "audio_codec", "audio_rate", "audio_channels", "audio_samples", "audio_duration"]
    )
    with av.open(str(path)) as container:
        info["format"] = container.format.name
        info["duration"] = container.duration / av.time_base if container.duration is not None else None
        if container.streams.video:
            v = container.streams.video[0]
            ctx = v.codec_context
            info.update(
                video_codec=ctx.name, pix_fmt=ctx.pix_fmt, width=ctx.width, height=ctx.height,
                fps=float(v.average_rate) if v.average_rate else None, colorspace=int(ctx.colorspace),
            )
            pts = [p.pts for p in container.demux(v) if p.pts is not None]
            info["num_frames"] = len(pts)
            if pts and info["fps"]:
                info["video_duration"] = float((max(pts) - min(pts)) * v.time_base) + 1.0 / info["fps"]
    with av.open(str(path)) as container:
        if container.streams.audio:
            a = container.streams.audio[0]
            info.update(audio_codec=a.codec_context.name, audio_rate=a.codec_context.sample_rate,
                        audio_channels=a.codec_context.channels)
            if a.duration is not None and a.time_base is not None:
                info["audio_duration"] = float(a.duration * a.time_base)
            info["audio_samples"] = sum(f.samples for f in container.decode(a))
    return info
