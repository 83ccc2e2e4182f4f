// AudioWorklet: the microphone at the context's rate -> 16-bit mono PCM at `rate` (16 kHz),
// posted as ArrayBuffers of `frame` samples (640 = 40 ms). Downsampling: a moving average over
// about one output period (the anti-alias filter), then linear interpolation.
"use strict";

class Pcm16k extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.rate = o.rate || 16000;
    this.ratio = sampleRate / this.rate;
    this.width = Math.max(1, Math.round(this.ratio));
    this.ring = new Float32Array(this.width);
    this.ringPos = 0;
    this.sum = 0;
    this.t = 0;            // input position of the next output sample, relative to this block
    this.last = 0;         // the filtered sample before this block
    this.frame = o.frame || 640;
    this.out = new Int16Array(this.frame);
    this.n = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || !input[0]) return true;
    const x = input[0];
    const f = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {  // moving average (sum of the last `width` samples)
      this.sum += x[i] - this.ring[this.ringPos];
      this.ring[this.ringPos] = x[i];
      this.ringPos = (this.ringPos + 1) % this.width;
      f[i] = this.sum / this.width;
    }
    while (this.t < x.length - 1) {
      const i0 = Math.floor(this.t), frac = this.t - i0;
      const a = i0 < 0 ? this.last : f[i0];
      const y = a + (f[i0 + 1] - a) * frac;
      this.out[this.n++] = Math.max(-32768, Math.min(32767, Math.round(y * 32767)));
      if (this.n === this.frame) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]);  // transferred: this.out is detached
        this.out = new Int16Array(this.frame);
        this.n = 0;
      }
      this.t += this.ratio;
    }
    this.t -= x.length;
    this.last = f[x.length - 1];
    return true;
  }
}

registerProcessor("pcm16k", Pcm16k);
