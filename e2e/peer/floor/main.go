// Command floor is the least a kubelet does for a pod: the floor the vk-eci benchmark measures the daemon
// against (`make bench-peer`, issue 18). It registers a Node and keeps its Lease fresh, watches the pods bound
// to the node, PATCHes each new pod's status to Running (phase, Ready conditions, a pod IP, container
// statuses) and, when a pod is deleted gracefully, deletes it with grace 0. Nothing else: no events, no
// backend, no per-pod state beyond the informer's cache, so its requests per pod are 2 (a status PATCH and a
// DELETE) and its CPU per pod is what client-go's watch, JSON and HTTP cost.
//
//	floor --kubeconfig FILE --nodename NAME [--node-ip 127.0.0.1] [--workers 10]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

const (
	leaseNamespace = "kube-node-lease"
	leaseSeconds   = 40 // the kubelet's default; renewed every quarter of it
	taintKey       = "virtual-kubelet.io/provider"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	nodeName := flag.String("nodename", "floor", "name of the Node to register and serve")
	nodeIP := flag.String("node-ip", "127.0.0.1", "the Node's InternalIP and every pod's hostIP")
	workers := flag.Int("workers", 10, "pods handled in parallel (the Go virtual-kubelet's default pod-sync-workers)")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("floor: kubeconfig %q cannot be used: %v", *kubeconfig, err)
	}
	cfg.QPS = -1 // no client-side rate limit: the floor measures the API server, not a token bucket
	cfg.UserAgent = "vkeci-bench-floor"
	client := kubernetes.NewForConfigOrDie(cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	node, err := registerNode(ctx, client, *nodeName, *nodeIP)
	if err != nil {
		log.Fatalf("floor: cannot register node %s: %v", *nodeName, err)
	}
	go keepLease(ctx, client, node)

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", *nodeName).String()
		}))
	pods := factory.Core().V1().Pods()
	// Per-item backoff only (no global token bucket), the same limiter the peer is patched to use.
	queue := workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, 10*time.Second))
	enqueue := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || (pod.DeletionTimestamp == nil && isRunning(pod)) {
			return
		}
		if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
			queue.Add(key)
		}
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		log.Fatalf("floor: cannot watch pods: %v", err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	s := &server{client: client, lister: pods.Lister(), nodeIP: *nodeIP}
	for i := 0; i < *workers; i++ {
		go func() {
			for s.next(ctx, queue) {
			}
		}()
	}
	log.Printf("floor: node %s ready, %d workers", *nodeName, *workers)
	<-ctx.Done()
	queue.ShutDown()
}

type server struct {
	client kubernetes.Interface
	lister listersv1.PodLister
	nodeIP string
	ips    atomic.Uint32
}

// next handles one queued pod; false once the queue is shut down.
func (s *server) next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	if err := s.sync(ctx, key); err != nil {
		log.Printf("floor: %s: %v (retrying)", key, err)
		queue.AddRateLimited(key)
		return true
	}
	queue.Forget(key)
	return true
}

func (s *server) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.lister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil {
		// The kubelet's last word on a pod: remove it for good once its containers are gone (here: none).
		zero := int64(0)
		err := s.client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone already, or a newer pod of the same name
		}
		return err
	}
	if isRunning(pod) {
		return nil
	}
	body, err := json.Marshal(map[string]any{"status": s.runningStatus(pod)})
	if err != nil {
		return err
	}
	_, err = s.client.CoreV1().Pods(namespace).Patch(ctx, name, types.StrategicMergePatchType, body,
		metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// runningStatus is what `kubectl get pods` needs to show the pod Running and Ready, with an IP.
func (s *server) runningStatus(pod *corev1.Pod) corev1.PodStatus {
	now := metav1.Now()
	n := s.ips.Add(1)
	ip := fmt.Sprintf("10.%d.%d.%d", 128+(n>>16)&127, (n>>8)&255, n&255)
	status := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    s.nodeIP,
		HostIPs:   []corev1.HostIP{{IP: s.nodeIP}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &now,
	}
	for _, t := range []corev1.PodConditionType{
		corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady,
		corev1.PodScheduled,
	} {
		status.Conditions = append(status.Conditions,
			corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	started := true
	for _, c := range pod.Spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name:    c.Name,
			Image:   c.Image,
			Ready:   true,
			Started: &started,
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return status
}

func isRunning(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""
}

// registerNode creates the Node (or takes over an existing one) and writes a Ready status; returns the Node.
func registerNode(ctx context.Context, client kubernetes.Interface, name, ip string) (*corev1.Node, error) {
	capacity := corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("20000"),
		corev1.ResourceCPU:    resource.MustParse("100000"),
		corev1.ResourceMemory: resource.MustParse("400Ti"),
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/hostname": name,
		}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{
			{Key: taintKey, Value: "floor", Effect: corev1.TaintEffectNoSchedule},
		}},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	now := metav1.Now()
	status := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "floor is ready", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.35.4-floor", OperatingSystem: "linux", Architecture: "amd64"},
	}
	// A PATCH, not an update: the node lifecycle controller may have changed the Node since the create.
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return nil, err
	}
	return client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
}

// keepLease renews the node's Lease, the heartbeat the node lifecycle controller watches, until ctx ends.
func keepLease(ctx context.Context, client kubernetes.Interface, node *corev1.Node) {
	leases := client.CoordinationV1().Leases(leaseNamespace)
	seconds := int32(leaseSeconds)
	for {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: node.Name, OwnerReferences: []metav1.OwnerReference{
					{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID},
				}},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: &node.Name, LeaseDurationSeconds: &seconds, RenewTime: &now,
				},
			}, metav1.CreateOptions{})
		case err == nil:
			lease.Spec.RenewTime = &now
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("floor: lease renewal failed: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(leaseSeconds * time.Second / 4):
		}
	}
}
