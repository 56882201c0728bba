/**
 * Audio and video between the people in the room: media flows peer to peer,
 * the offers, answers and ICE candidates go through the hub (the room's
 * "signal" messages, never stored). STUN/TURN servers come from the hub's
 * settings (WEBRTC_ICE_SERVERS).
 *
 * Whoever starts a call tells every connection in the room ("call"). Of each
 * pair in the call, the connection with the larger id opens the peer connection
 * and offers; the other answers a "call" with a "call" of its own, addressed to
 * it. Offers still use the "perfect negotiation" pattern (the connection with
 * the smaller id is the polite one) for renegotiation and ICE restarts.
 */

import { rt } from "./strings.js";

export class Call {
  constructor(room, { iceServers, localVideo, remoteBox, button, status }) {
    this.room = room;
    this.iceServers = iceServers || [];
    this.localVideo = localVideo;
    this.remoteBox = remoteBox;
    this.button = button;
    this.status = status;
    this.stream = null;
    this.peers = new Map();
    button.addEventListener("click", () => (this.stream ? this.stop() : this.start()));
    this.render();
  }

  async start() {
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    } catch (error) {
      console.error(error);
      this.status.textContent = rt("call_failed");
      return;
    }
    this.localVideo.srcObject = this.stream;
    this.room.emit("signal", { to: "*", data: { kind: "call" } });
    this.render();
  }

  stop() {
    for (const conn of [...this.peers.keys()]) {
      this.room.emit("signal", { to: conn, data: { kind: "bye" } });
      this.close(conn);
    }
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.localVideo.srcObject = null;
    this.render();
  }

  /** Someone left the room (or the line dropped): their peer connection goes. */
  gone(conn) {
    this.close(conn);
  }

  close(conn) {
    const peer = this.peers.get(conn);
    if (!peer) return;
    peer.pc.close();
    peer.video.remove();
    this.peers.delete(conn);
    this.render();
  }

  peer(conn) {
    if (this.peers.has(conn)) return this.peers.get(conn);
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.className = "cs-video cs-video--remote";
    video.dataset.conn = conn;
    this.remoteBox.append(video);
    const peer = { pc, video, polite: this.room.conn < conn, makingOffer: false, ignoreOffer: false };
    this.peers.set(conn, peer);
    for (const track of this.stream.getTracks()) pc.addTrack(track, this.stream);
    pc.addEventListener("track", (e) => {
      if (video.srcObject !== e.streams[0]) video.srcObject = e.streams[0];
    });
    pc.addEventListener("icecandidate", (e) => {
      if (e.candidate) this.room.emit("signal", { to: conn, data: { kind: "ice", candidate: e.candidate.toJSON() } });
    });
    pc.addEventListener("negotiationneeded", async () => {
      try {
        peer.makingOffer = true;
        await pc.setLocalDescription();
        this.room.emit("signal", { to: conn, data: { kind: "sdp", description: pc.localDescription.toJSON() } });
      } catch (error) {
        console.error(error);
      } finally {
        peer.makingOffer = false;
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      video.dataset.state = pc.connectionState;
      if (pc.connectionState === "failed") pc.restartIce();
      this.render();
    });
    return peer;
  }

  /** A signal relayed by the hub from connection `conn`. */
  async signal(conn, data) {
    if (data.kind === "bye") return this.close(conn);
    if (!this.stream) return; // not in the call: their "call" waits until we join
    if (data.kind === "call") {
      // One side of each pair offers: the connection with the larger id. Two
      // offers crossing (both pressed the button at once) were resolved by the
      // polite side's rollback, and Chromium then sometimes never gathered its
      // candidates again: the call hung at "new". The other side asks instead.
      if (this.room.conn > conn) this.peer(conn); // adding our tracks fires negotiationneeded: we offer
      else this.room.emit("signal", { to: conn, data: { kind: "call" } });
      return;
    }
    const peer = this.peer(conn);
    const pc = peer.pc;
    try {
      if (data.kind === "sdp") {
        const description = data.description;
        const collision = description.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
        peer.ignoreOffer = !peer.polite && collision;
        if (peer.ignoreOffer) return;
        await pc.setRemoteDescription(description);
        if (description.type === "offer") {
          await pc.setLocalDescription();
          this.room.emit("signal", { to: conn, data: { kind: "sdp", description: pc.localDescription.toJSON() } });
        }
      } else if (data.kind === "ice") {
        try {
          await pc.addIceCandidate(data.candidate);
        } catch (error) {
          if (!peer.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      console.error(error);
    }
  }

  /** Connection states of every peer, for the page and the tests. */
  states() {
    return [...this.peers.entries()].map(([conn, peer]) => ({
      conn,
      connectionState: peer.pc.connectionState,
      iceConnectionState: peer.pc.iceConnectionState,
    }));
  }

  render() {
    this.button.textContent = this.stream ? rt("call_stop") : rt("call_start");
    this.button.setAttribute("aria-pressed", String(Boolean(this.stream)));
    this.localVideo.hidden = !this.stream;
    if (this.stream) {
      const connected = this.states().filter((s) => s.connectionState === "connected").length;
      this.status.textContent = `${connected}/${this.peers.size}`;
    } else {
      this.status.textContent = "";
    }
  }
}
