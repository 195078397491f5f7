// AudioWorklet that turns the microphone into 30 ms PCM16 chunks at 16 kHz.
//
// The AudioContext usually runs at 48 kHz (or 44.1 kHz), so we resample here:
// each output sample is the mean of the input samples in its time slot (a box
// filter), which both decimates and removes most of what would alias.
// Posts {pcm: ArrayBuffer (Int16, little-endian), rms: number} per chunk.
class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 16000;
    this.chunkSamples = opts.chunkSamples || Math.round(this.targetRate * 0.03);
    this.step = sampleRate / this.targetRate; // input samples per output sample
    this.pos = 0; // input position (fractional) where the current output slot ends
    this.acc = 0; // running sum of the current slot
    this.accN = 0;
    this.out = new Int16Array(this.chunkSamples);
    this.outN = 0;
    this.sumSq = 0;
    this.slotEnd = this.step;
    this.inIndex = 0;
  }

  emit(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.out[this.outN++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.sumSq += s * s;
    if (this.outN === this.chunkSamples) {
      const rms = Math.sqrt(this.sumSq / this.chunkSamples);
      const pcm = this.out.buffer;
      this.port.postMessage({ pcm, rms }, [pcm]);
      this.out = new Int16Array(this.chunkSamples);
      this.outN = 0;
      this.sumSq = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const ch = input[0];
    if (this.step <= 1) {
      // Context at or below 16 kHz: output sample k sits at input position
      // k * step; interpolate linearly between the neighbouring inputs.
      for (let i = 0; i < ch.length; i++) {
        const x = ch[i];
        const prev = this.prev === undefined ? x : this.prev;
        while (this.pos <= this.inIndex) {
          const frac = this.pos - (this.inIndex - 1);
          this.emit(prev + (x - prev) * frac);
          this.pos += this.step;
        }
        this.prev = x;
        this.inIndex++;
      }
      if (this.inIndex > 1e6) {
        this.inIndex -= 1e6;
        this.pos -= 1e6;
      }
      return true;
    }
    for (let i = 0; i < ch.length; i++) {
      this.acc += ch[i];
      this.accN++;
      this.inIndex++;
      if (this.inIndex >= this.slotEnd) {
        this.emit(this.acc / this.accN);
        this.acc = 0;
        this.accN = 0;
        this.slotEnd += this.step;
      }
    }
    // Keep the counters small so precision never drifts on long sessions.
    if (this.inIndex > 1e6) {
      this.inIndex -= 1e6;
      this.slotEnd -= 1e6;
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
